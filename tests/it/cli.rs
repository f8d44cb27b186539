//! The `verge` binary: `validate` output, SIGHUP reloads, restart-only changes reported.

use std::time::Duration;

use crate::support::binary::{start, validate};
use crate::support::proxy::metric;
use crate::support::{eventually, get, origin};

#[test]
fn validate_prints_file_line_col_for_each_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[origins.app]\nurl = \"http://127.0.0.1:1\"\nconnect_timeout = \"fast\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"ap\"\nviewer_request = \"f\"\n\
         [functions.f]\ncode = \"gone.js\"\n",
    )
    .unwrap();
    let (code, out) = validate(&path);
    assert_eq!(code, 64, "{out}");
    let p = path.display();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!("{p}:3:19: origins.app.connect_timeout: ")),
        "{out}"
    );
    assert_eq!(
        lines[1],
        format!("{p}:6:10: behaviors[0].origin: no origin or origin group is named `ap`")
    );
    assert!(
        lines[2].starts_with(&format!("{p}:9:8: functions.f.code: cannot read ")),
        "{out}"
    );

    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:8080\"]\nthreds = 2\n",
    )
    .unwrap();
    let (code, out) = validate(&path);
    assert_eq!(code, 64);
    assert!(
        out.starts_with(&format!("{p}:3:1: server.threds: unknown field `threds`")),
        "{out}"
    );

    let (code, out) = validate(std::path::Path::new("examples/verge.toml"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_and_reports_restart_only_changes() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let dir = tempfile::tempdir().unwrap();
    let template = |url: &str| {
        format!(
            "[server]\nlisten = [\"{{listen}}\"]\n[admin]\nlisten = \"{{admin}}\"\n\
             [origins.o]\nurl = \"{url}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n"
        )
    };
    let verge = start(dir.path(), &template(&a.url())).await;
    assert_eq!(get(verge.addr, "/echo").await.header("x-origin"), "a");

    // A reloadable change through SIGHUP (file watching is slowed down to isolate the signal).
    let config = std::fs::read_to_string(dir.path().join("verge.toml")).unwrap();
    std::fs::write(
        dir.path().join("verge.toml"),
        config.replace(&a.url(), &b.url()),
    )
    .unwrap();
    verge.signal(libc::SIGHUP);
    let switched = eventually(100, Duration::from_millis(50), || async {
        (get(verge.addr, "/echo").await.header("x-origin") == "b").then_some(())
    })
    .await;
    assert!(switched.is_some(), "SIGHUP did not reload");

    // A restart-only change: reported, counted, not applied; the proxy keeps serving.
    let config = std::fs::read_to_string(dir.path().join("verge.toml")).unwrap();
    let moved = config.replace(
        &format!("listen = [\"{}\"]", verge.addr),
        "listen = [\"127.0.0.1:1\"]",
    );
    assert_ne!(moved, config);
    std::fs::write(dir.path().join("verge.toml"), moved).unwrap();
    verge.signal(libc::SIGHUP);
    let reported = eventually(100, Duration::from_millis(50), || async {
        verge
            .json_lines()
            .into_iter()
            .find(|l| l["fields"].as_str() == Some("server.listen"))
    })
    .await
    .expect("restart-only change was not reported");
    assert_eq!(reported["level"], "WARN");
    assert!(reported["message"].as_str().unwrap().contains("restart"));
    let m = get(verge.admin, "/metrics").await.text();
    assert_eq!(
        metric(&m, "verge_config_restart_required_total"),
        1.0,
        "{m}"
    );
    assert_eq!(
        get(verge.addr, "/echo").await.status,
        200,
        "still on the old listener"
    );
}
