//! `scripts/setup.sh`, which both README commands run first: its disk checks stop the command
//! before cargo starts, naming the folder, what is free there and what a build needs. Free
//! space is faked with a `df` placed first on `PATH` that reports 10 MiB for one chosen folder.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A `df -Pm DIR` answering 10 MiB free for `$VERGE_TEST_SMALL_DIR` and plenty elsewhere.
const FAKE_DF: &str = "#!/bin/sh\n\
    if [ \"$2\" = \"$VERGE_TEST_SMALL_DIR\" ]; then avail=10; else avail=999999; fi\n\
    echo 'Filesystem 1048576-blocks Used Available Capacity Mounted on'\n\
    echo \"fake 1000000 0 $avail 1% /\"\n";

/// Run the script with `target` as the build folder, `tmp` as `$TMPDIR`, and `small` the one
/// folder short of space; its exit code and standard error.
fn setup(target: &Path, tmp: &Path, small: &Path) -> (i32, String) {
    let bin = tempfile::tempdir().unwrap();
    let df = bin.path().join("df");
    std::fs::write(&df, FAKE_DF).unwrap();
    let mut permissions = std::fs::metadata(&df).unwrap().permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(&df, permissions).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup.sh"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target)
        .env("TMPDIR", tmp)
        .env("VERGE_TEST_SMALL_DIR", small)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn setup_stops_before_building_when_the_disk_is_short_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let (target, tmp) = (dir.path().join("target"), dir.path().join("tmp"));
    std::fs::create_dir_all(&tmp).unwrap();

    // A cold build folder: about 5 GiB needed.
    let (code, err) = setup(&target, &tmp, &target);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "only 10 MiB free for {}; building verge needs about 5120 MiB",
            target.display()
        )),
        "{err}"
    );

    // Already built once: 1 GiB is enough, and still more than 10 MiB.
    std::fs::create_dir_all(target.join("release/deps")).unwrap();
    let (code, err) = setup(&target, &tmp, &target);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("building verge needs about 1024 MiB"), "{err}");

    // Room for the build but not for the C compiler's temporary files.
    let (code, err) = setup(&target, &tmp, &tmp);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "only 10 MiB free in {}, where the C compiler writes; it needs 256 MiB",
            tmp.display()
        )),
        "{err}"
    );

    // Room everywhere: the script goes on and succeeds (the tools are installed by now).
    let (code, err) = setup(&target, &tmp, &dir.path().join("elsewhere"));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("MiB free"), "{err}");
}
