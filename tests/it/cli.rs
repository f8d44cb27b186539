//! The `verge` binary: `validate` output, SIGHUP reloads, restart-only changes reported, how
//! rarely an idle verge wakes up, and the bundled example doing what the README says.

use std::time::Duration;

use crate::support::binary::{Verge, exe, free_addr, listens_on, start, start_watching, validate};
use crate::support::certs::Ca;
use crate::support::client::{tls_client, tls_get};
use crate::support::proxy::metric;
use crate::support::{eventually, get, origin};

/// `verge validate` on a configuration with one 2.0 function: (exit code, stdout, stderr).
fn validate_function(code: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.js"), code).unwrap();
    let path = dir.path().join("verge.toml");
    std::fs::write(
        &path,
        "[origins.app]\nurl = \"http://127.0.0.1:1\"\n[[behaviors]]\npath_pattern = \"*\"\n\
         origin = \"app\"\nviewer_request = \"f\"\n[functions.f]\ncode = \"f.js\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(exe())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_warns_of_what_cloudfronts_runtime_was_reported_to_refuse() {
    let (code, out, err) = validate_function(
        "function handler(event) {\n  var h = event.request.headers.host?.value;\n  \
         var [first] = [h];\n  return event.request;\n}\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": ok ("), "{out}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("reported to fail"))
        .collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].contains("f.js:2:37: optional chaining") && warnings[0].contains("WARN"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("f.js:3:7: array destructuring"),
        "{}",
        warnings[1]
    );
    // A function without them: nothing said.
    let (code, _, err) = validate_function("function handler(event) { return event.request; }\n");
    assert_eq!(code, 0);
    assert!(!err.contains("reported to fail"), "{err}");
    // `test-function` says it too, and still runs the function.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.js");
    std::fs::write(
        &f,
        "function handler(event) {\n  return event.request.headers?.host ? event.request : {};\n}\n",
    )
    .unwrap();
    let out = std::process::Command::new(exe())
        .args(["test-function", "--function"])
        .arg(&f)
        .args(["--event", "tests/fixtures/events/viewer-request.json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("f.js:2:31: optional chaining"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FunctionOutput"),
        "{err}"
    );
}

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

/// A configuration template: every request to the origin at `url`, proxy and admin listeners
/// left for `start` to fill in.
fn one_origin(url: &str) -> String {
    format!(
        "[server]\nlisten = [\"{{listen}}\"]\n[admin]\nlisten = \"{{admin}}\"\n\
         [origins.o]\nurl = \"{url}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_and_reports_restart_only_changes() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let dir = tempfile::tempdir().unwrap();
    // File watching off: only the signal can cause a reload here.
    let verge = start_watching(dir.path(), &one_origin(&a.url()), 0).await;
    assert_eq!(get(verge.addr, "/echo").await.header("x-origin"), "a");

    let config = std::fs::read_to_string(dir.path().join("verge.toml")).unwrap();
    std::fs::write(
        dir.path().join("verge.toml"),
        config.replace(&a.url(), &b.url()),
    )
    .unwrap();
    // Without a signal nothing changes (a negative check needs a pause: 300 ms)…
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(verge.addr, "/echo").await.header("x-origin"), "a");
    // …and SIGHUP reloads.
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

#[tokio::test(flavor = "multi_thread")]
async fn a_started_verge_is_told_apart_from_another_listener_on_its_port() {
    // `start` only takes a child as started when the ports it was given are its own, so a port
    // another test took between release and bind is retried, not tested against.
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    let verge = start(dir.path(), &one_origin(&a.url())).await;
    let child = verge.child.id();
    let origin_addr: std::net::SocketAddr = a.url().trim_start_matches("http://").parse().unwrap();
    assert!(listens_on(child, verge.addr) && listens_on(child, verge.admin));
    assert!(!listens_on(std::process::id(), verge.addr));
    assert!(listens_on(std::process::id(), origin_addr));
    assert!(!listens_on(child, origin_addr));
}

#[test]
fn a_listen_address_in_use_stops_the_start_and_says_which() {
    // pingora would retry the bind for 30 s and then give up on its own thread, leaving a
    // process whose admin port answers and whose proxy port is someone else's.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verge.toml");
    let config = one_origin("http://127.0.0.1:1")
        .replace("{listen}", &taken.to_string())
        .replace("{admin}", &free_addr().to_string());
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(exe())
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = status.expect("verge kept running on a port it could not listen on");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "verge: cannot start: cannot listen on {taken} (server.listen): "
        )),
        "{stderr}"
    );
}

/// Room the edit in the test below can take from or give to, to keep the file's size.
const PAD: &str = "..........";

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_config_file_reloads_without_a_signal() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let dir = tempfile::tempdir().unwrap();
    let verge = start(dir.path(), &format!("{}# {PAD}\n", one_origin(&a.url()))).await;
    let first = get(verge.addr, "/echo").await;
    assert_eq!(
        first.header("x-origin"),
        "a",
        "{} {}",
        first.status,
        first.text()
    );
    let path = dir.path().join("verge.toml");
    let set_modified = |at: std::time::SystemTime| {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(at).unwrap();
    };
    // A modification time that moves is a change: the file is reloaded (still origin a).
    let ahead = std::time::SystemTime::now() + Duration::from_secs(86_400);
    set_modified(ahead);
    assert!(
        verge.reaches_generation(2).await,
        "a moved modification time did not reload"
    );
    // An edit that keeps the size and the time, as on a file system whose timestamps move in
    // whole seconds when the edit lands in the step of the write before it. (The time is in
    // the future here, which the watcher never trusts, so the check does not depend on how
    // quickly this test gets here; the unit tests of `reload_watch` cover a recent time.)
    let config = std::fs::read_to_string(&path).unwrap();
    // The comment at the end takes up any difference in the ports' lengths.
    let pad = PAD.len() + a.url().len() - b.url().len();
    let edited = config
        .replace(&a.url(), &b.url())
        .replace(PAD, &".".repeat(pad));
    assert_eq!(edited.len(), config.len());
    std::fs::write(&path, edited).unwrap();
    set_modified(ahead);
    let switched = eventually(100, Duration::from_millis(50), || async {
        (get(verge.addr, "/echo").await.header("x-origin") == "b").then_some(())
    })
    .await;
    assert!(
        switched.is_some(),
        "a same-size edit at the same time did not reload"
    );
    assert_eq!(verge.generation().await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_failed_on_a_missing_function_file_is_retried_when_it_appears() {
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    let verge = start(dir.path(), &one_origin(&a.url())).await;
    let path = dir.path().join("verge.toml");
    let failed_reloads = || async {
        metric(
            &get(verge.admin, "/metrics").await.text(),
            r#"verge_config_reloads_total{result="failed"}"#,
        )
    };
    // The configuration names a function whose file is not written yet: the reload fails.
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{config}viewer_request = \"later\"\n[functions.later]\ncode = \"later.js\"\n"),
    )
    .unwrap();
    let failed = eventually(100, Duration::from_millis(50), || async {
        (failed_reloads().await == 1.0).then_some(())
    })
    .await;
    assert!(failed.is_some(), "the reload did not fail");
    assert_eq!(verge.generation().await, 1);
    // Written now, with the configuration left as it was: the reload is retried and succeeds.
    std::fs::write(
        dir.path().join("later.js"),
        "function handler(event) {\n\
           event.request.headers['x-later'] = { value: 'yes' };\n\
           return event.request;\n\
         }\n",
    )
    .unwrap();
    assert!(
        verge.reaches_generation(2).await,
        "the new function file did not retry the reload"
    );
    let echoed = get(verge.addr, "/echo").await.json();
    assert_eq!(echoed["headers"]["x-later"], "yes", "{echoed}");
    assert_eq!(failed_reloads().await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_takes_the_listening_sockets_over_from_the_running_verge() {
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    let template = one_origin(&a.url()).replace("[admin]", "shutdown_grace = \"1s\"\n[admin]");
    let mut old = start(dir.path(), &template).await;
    assert_eq!(get(old.addr, "/echo").await.header("x-origin"), "a");
    // The new process waits (pingora: up to 5 s) for the sockets on the upgrade socket named
    // after the configuration file, and the old one retries sending them as long: no order to
    // wait for between the start and the signal.
    let new = std::process::Command::new(exe())
        .args(["serve", "--upgrade", "--config"])
        .arg(dir.path().join("verge.toml"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let new = Verge {
        child: new,
        addr: old.addr,
        admin: old.admin,
        tls: old.tls,
        lines: Default::default(),
    };
    old.signal(libc::SIGQUIT);
    let exited = old.wait_exit(Duration::from_secs(20));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    let pid = new.child.id();
    let taken_over = eventually(100, Duration::from_millis(50), || async {
        (listens_on(pid, new.addr) && listens_on(pid, new.admin)).then_some(())
    })
    .await;
    assert!(
        taken_over.is_some(),
        "the new process does not hold the listeners"
    );
    assert_eq!(get(new.addr, "/echo").await.header("x-origin"), "a");
    assert_eq!(get(new.admin, "/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_exits_cleanly() {
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    let mut verge = start(
        dir.path(),
        &format!(
            "[server]\nlisten = [\"{{listen}}\"]\nshutdown_grace = \"1s\"\n[admin]\nlisten = \"{{admin}}\"\n\
             [origins.o]\nurl = \"{}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n",
            a.url()
        ),
    )
    .await;
    assert_eq!(get(verge.addr, "/echo").await.status, 200);
    verge.signal(libc::SIGTERM);
    let status = verge
        .wait_exit(Duration::from_secs(20))
        .expect("verge did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    let stopped = eventually(50, Duration::from_millis(20), || async {
        verge
            .json_lines()
            .into_iter()
            .find(|l| l["message"] == "verge stopped")
    })
    .await;
    assert!(stopped.is_some(), "no clean-stop line");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_stuck_workers_drain_and_exit_for_a_restart() {
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    // A JS comparator under a native sort: only the hard ceiling stops it; its worker is
    // retired and stays busy (stuck) until the sort returns, about a second later.
    std::fs::write(
        dir.path().join("sort.js"),
        "function handler(e) { \
           var a = Array.from({length: 5000}, function (_, i) { return (i * 7919) % 5000; }); \
           a.sort(function (x, y) { for (var k = 0; k < 500; k++) {} return y - x; }); \
           return e.request; }",
    )
    .unwrap();
    let mut verge = start(
        dir.path(),
        &format!(
            "[server]\nlisten = [\"{{listen}}\"]\nshutdown_grace = \"1s\"\nmax_stuck_workers = 1\n\
             [admin]\nlisten = \"{{admin}}\"\n[origins.o]\nurl = \"{}\"\n\
             [[behaviors]]\npath_pattern = \"/sort*\"\norigin = \"o\"\nviewer_request = \"sort\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n\
             [functions.sort]\ncode = \"sort.js\"\n",
            a.url()
        ),
    )
    .await;
    assert_eq!(get(verge.addr, "/echo").await.status, 200);
    assert_eq!(get(verge.addr, "/sort").await.status, 503);
    exits_for_a_restart_saying(&mut verge, &["stuck in native calls"]).await;
}

/// `verge` drains and exits with status 70 (past `max_stuck_workers`), having logged lines
/// that say each of `said`.
async fn exits_for_a_restart_saying(verge: &mut Verge, said: &[&str]) {
    let status = verge
        .wait_exit(Duration::from_secs(20))
        .expect("verge kept serving past max_stuck_workers");
    assert_eq!(status.code(), Some(70), "{status:?}");
    for said in said {
        let logged = eventually(50, Duration::from_millis(20), || async {
            verge.json_lines().into_iter().find(|l| {
                l["fields"]["message"]
                    .as_str()
                    .or(l["message"].as_str())
                    .is_some_and(|m| m.contains(said))
            })
        })
        .await;
        assert!(logged.is_some(), "no log line saying {said:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_instances_parked_at_their_memory_ceiling_count_as_stuck() {
    let a = origin().name("a").run().await;
    let dir = tempfile::tempdir().unwrap();
    // After the `await` the loop is one promise job that no check reaches: the allocator's
    // hard ceiling (4 x 128 MB) stops it, and the instance parks for good.
    std::fs::write(
        dir.path().join("hog.js"),
        "exports.handler = async (event) => { await null; const kept = []; \
           for (;;) { kept.push(new Uint8Array(1 << 20)); } };",
    )
    .unwrap();
    let mut verge = start(
        dir.path(),
        &format!(
            "[server]\nlisten = [\"{{listen}}\"]\nshutdown_grace = \"1s\"\nmax_stuck_workers = 2\n\
             [admin]\nlisten = \"{{admin}}\"\n[origins.o]\nurl = \"{}\"\n\
             [[behaviors]]\npath_pattern = \"/hog*\"\norigin = \"o\"\norigin_request = \"hog\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n\
             [functions.hog]\nruntime = \"lambda-edge\"\ncode = \"hog.js\"\ninstances = 1\n",
            a.url()
        ),
    )
    .await;
    // Lambda's answer to a runtime out of memory, long before the 30 s timeout.
    let started = std::time::Instant::now();
    let r = get(verge.addr, "/hog").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-cache"), "LambdaExecutionError from verge");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // One parked instance is below the limit: verge serves on, and a replacement instance
    // takes the function's one place.
    assert_eq!(get(verge.addr, "/echo").await.status, 200);
    let m = get(verge.admin, "/metrics").await.text();
    assert_eq!(
        metric(&m, "verge_functions_edge{function=\"hog\",what=\"parked\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(get(verge.addr, "/hog").await.status, 503);
    // The second reaches max_stuck_workers: verge drains and exits for a restart.
    exits_for_a_restart_saying(
        &mut verge,
        &["parked for good", "parked at their memory ceiling"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_tls_with_http2_and_reloads_certificates() {
    let a = origin().name("a").run().await;
    let ca = Ca::new("binary test CA");
    let first = ca.leaf();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &first.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &first.key_pem).unwrap();
    let verge = start(
        dir.path(),
        &format!(
            "[server]\nlisten = [\"{{listen}}\"]\n[[server.tls]]\nlisten = \"{{tls}}\"\n\
             cert = \"cert.pem\"\nkey = \"key.pem\"\n[admin]\nlisten = \"{{admin}}\"\n\
             [origins.o]\nurl = \"{}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n",
            a.url()
        ),
    )
    .await;
    let (r, cert) = tls_get(verge.tls, tls_client(&ca.cert_pem, true), "/echo").await;
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_2));
    assert_eq!(r.header("x-cache"), "Miss from verge");
    assert_eq!(cert, first.der());
    let (r, _) = tls_get(verge.tls, tls_client(&ca.cert_pem, false), "/echo").await;
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_11));

    let second = ca.leaf();
    std::fs::write(dir.path().join("cert.pem"), &second.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &second.key_pem).unwrap();
    verge.signal(libc::SIGHUP);
    let renewed = eventually(100, Duration::from_millis(50), || async {
        let (_, cert) = tls_get(verge.tls, tls_client(&ca.cert_pem, false), "/echo").await;
        (cert == second.der()).then_some(())
    })
    .await;
    assert!(renewed.is_some(), "the renewed certificate was not served");
}

#[test]
fn test_function_runs_lambda_edge_events() {
    // The bundled origin-request example on the Lambda@Edge sample event, with a cookie that
    // sends it to origin B.
    let dir = tempfile::tempdir().unwrap();
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/events/lae-origin-request.json").unwrap(),
    )
    .unwrap();
    event["Records"][0]["cf"]["request"]["headers"]["cookie"] =
        serde_json::json!([{ "key": "Cookie", "value": "ab=b" }]);
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, event.to_string()).unwrap();
    let out = std::process::Command::new(crate::support::binary::exe())
        .args(["test-function", "--runtime", "lambda-edge", "--function"])
        .arg("examples/functions/origin-request-ab-origin.js")
        .arg("--event")
        .arg(&event_file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["FunctionErrorMessage"], "");
    assert_eq!(v["ValidationErrors"], serde_json::json!([]));
    let output: serde_json::Value =
        serde_json::from_str(v["FunctionOutput"].as_str().unwrap()).unwrap();
    assert_eq!(output["origin"]["custom"]["domainName"], "localhost");
    assert_eq!(output["headers"]["x-ab-bucket"][0]["value"], "b");
    assert_eq!(output["headers"]["host"][0]["value"], "localhost");
}

#[test]
fn test_function_gives_the_function_the_kvs_file_it_is_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.js");
    std::fs::write(
        &f,
        "import cf from 'cloudfront';\n\
         const kvs = cf.kvs();\n\
         async function handler(e) {\n\
           e.request.headers['x-secret'] = { value: await kvs.get('jwt.secret') };\n\
           e.request.headers['x-keys'] = { value: String((await kvs.meta()).keyCount) };\n\
           return e.request;\n\
         }\n",
    )
    .unwrap();
    let run = |runtime: &str, kvs: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(exe());
        command
            .args(["test-function", "--runtime", runtime, "--function"])
            .arg(&f)
            .args(["--event", "tests/fixtures/events/viewer-request.json"]);
        if let Some(kvs) = kvs {
            command.arg("--kvs").arg(kvs);
        }
        let out = command.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The bundled example's store, as the JWT example reads it.
    let store = std::path::Path::new("examples/data/jwt-secrets.json");
    let (status, out, err) = run("cloudfront-js-2.0", Some(store));
    assert_eq!(status, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["FunctionErrorMessage"], "", "{out}");
    let output: serde_json::Value =
        serde_json::from_str(v["FunctionOutput"].as_str().unwrap()).unwrap();
    assert_eq!(
        output["request"]["headers"]["x-secret"]["value"],
        "change-me"
    );
    assert_eq!(output["request"]["headers"]["x-keys"]["value"], "1");

    // Without a store the function fails as it would in production with none associated.
    let (status, out, err) = run("cloudfront-js-2.0", None);
    assert_eq!(status, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_ne!(v["FunctionErrorMessage"], "", "{out}");

    // A store file CloudFront would refuse is unusable input, said as such.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"data":[{"key":"a","value":"1"},{"key":"a","value":"2"}]}"#,
    )
    .unwrap();
    let (status, out, err) = run("cloudfront-js-2.0", Some(&bad));
    assert_eq!((status, out.as_str()), (64, ""), "{err}");
    assert!(
        err.contains("--kvs: ") && err.contains("appears twice"),
        "{err}"
    );
    let (status, _, err) = run("lambda-edge", Some(store));
    assert_eq!(status, 64, "{err}");
    assert!(err.contains("lambda-edge handlers have none"), "{err}");
}

#[test]
fn test_function_prints_aws_fields_and_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |code: &str| {
        let f = dir.path().join("f.js");
        std::fs::write(&f, code).unwrap();
        let out = std::process::Command::new(crate::support::binary::exe())
            .args(["test-function", "--function"])
            .arg(&f)
            .args(["--event", "tests/fixtures/events/viewer-request.json"])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The bundled example function, unmodified.
    let code = std::fs::read_to_string("examples/functions/viewer-request-ab.js").unwrap();
    let (status, out, err) = run(&code);
    assert_eq!(status, 0, "{err}");
    // A clean run says nothing on stderr: the result is on stdout, and only warnings are logged.
    assert_eq!(err, "", "a clean run wrote to stderr");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["FunctionErrorMessage"], "");
    assert!(
        v["ComputeUtilization"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            <= 100
    );
    let output: serde_json::Value =
        serde_json::from_str(v["FunctionOutput"].as_str().unwrap()).unwrap();
    assert_eq!(output["request"]["uri"], "/app/index.html");
    assert_eq!(output["request"]["headers"]["x-ab-bucket"]["value"], "b");
    assert_eq!(
        output["request"]["headers"]["true-client-ip"]["value"],
        "203.0.113.50"
    );
    assert_eq!(
        output["request"]["querystring"]["lang"]["multiValue"][1]["value"],
        "de"
    );
    assert_eq!(v["ValidationErrors"], serde_json::json!([]));

    let (status, out, _) = run(
        "function handler(e) { console.log('hi'); e.request.headers['x-forwarded-proto'] = {value: 'http'}; return e.request; }",
    );
    assert_eq!(status, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["FunctionExecutionLogs"], serde_json::json!(["hi"]));
    assert!(
        v["ValidationErrors"][0]
            .as_str()
            .unwrap()
            .contains("x-forwarded-proto")
    );

    let (status, out, _) = run("function handler(e) { throw new Error('broken'); }");
    assert_eq!(status, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["FunctionErrorMessage"]
            .as_str()
            .unwrap()
            .contains("broken")
    );

    let (status, _, err) = run("function handler(e {");
    assert_eq!(status, 64);
    assert!(err.contains("syntax error"), "{err}");
}

/// Context switches so far of every thread of process `pid` but pingora's timer thread, which
/// ticks every 10 ms for good once the first request started it (pingora-timeout's clock; the
/// bare pingora proxy has it too).
fn context_switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        if status.lines().next() == Some("Name:\tTimer thread") {
            continue;
        }
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_verge_rarely_wakes_up() {
    // Every thread that polls costs an idle machine (and the neighbours of a busy one) a wake-up
    // per tick: the reload watcher sleeps on the SIGHUP pipe between file checks, idle fast
    // workers look up once a second, the supervisor naps. About 12 a second are left (the
    // access-log flush, the 500 ms file check, one per worker…); before, about 80.
    let origin = origin().run().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.js"),
        "function handler(event) { return event.request; }",
    )
    .unwrap();
    let template = format!(
        "[server]\nlisten = [\"{{listen}}\"]\n[admin]\nlisten = \"{{admin}}\"\n\
         [origins.o]\nurl = \"{}\"\n[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n\
         viewer_request = \"f\"\n[functions.f]\ncode = \"f.js\"\n",
        origin.url()
    );
    let verge = start_watching(dir.path(), &template, 500).await;
    assert_eq!(get(verge.addr, "/").await.status, 200);
    // Let the last request's after-work (collection, the supervisor's quiet ticks) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = verge.child.id();
    let before = context_switches(pid);
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let per_second = (context_switches(pid) - before) as f64 / window.as_secs_f64();
    assert!(
        per_second < 30.0,
        "{per_second:.1} wake-ups a second while idle"
    );
}

/// The scheduling policy (`SCHED_*`) of each thread of process `pid` named `name`.
fn policies_of(pid: u32, name: &str) -> Vec<i32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let tid = task.file_name().and_then(|t| t.to_str()?.parse().ok());
        if let (Some(tid), true) = (tid, comm.trim_end() == name) {
            policies.push(verge_functions::sched::of(tid));
        }
    }
    policies
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_threads_are_batch_scheduled_unless_the_configuration_says_otherwise() {
    let origin = origin().run().await;
    let dir = tempfile::tempdir().unwrap();
    let template = one_origin(&origin.url()).replace("[admin]", "threads = 1\n[admin]");
    let verge = start_watching(dir.path(), &template, 0).await;
    assert_eq!(get(verge.addr, "/").await.status, 200);
    let pid = verge.child.id();
    let served = policies_of(pid, "verge proxy");
    assert!(served.contains(&libc::SCHED_BATCH), "{served:?}");

    // Switched off by a reload: the thread gives itself the default back at its next request.
    let path = dir.path().join("verge.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace("threads = 1", "threads = 1\nbatch_scheduling = false"),
    )
    .unwrap();
    verge.signal(libc::SIGHUP);
    assert!(verge.reaches_generation(2).await, "the reload did not land");
    assert_eq!(get(verge.addr, "/").await.status, 200);
    let served = policies_of(pid, "verge proxy");
    assert!(!served.is_empty(), "no proxy thread found");
    assert!(!served.contains(&libc::SCHED_BATCH), "{served:?}");
}

/// `examples/verge.toml` with its own functions, in front of `origin` instead of the demo origin
/// on :8081, and with the placeholders `start` fills instead of its fixed ports.
fn bundled_example_template(origin: &str) -> String {
    let example = std::fs::read_to_string("examples/verge.toml").unwrap();
    for fixed in ["127.0.0.1:8080", "127.0.0.1:9901", "http://127.0.0.1:8081"] {
        assert!(
            example.contains(fixed),
            "examples/verge.toml no longer has {fixed}"
        );
    }
    example
        .replace("127.0.0.1:8080", "{listen}")
        .replace("127.0.0.1:9901", "{admin}")
        .replace("http://127.0.0.1:8081", origin)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_example_does_what_the_readme_and_its_comments_say() {
    let demo = origin().name("demo").run().await;
    let dir = tempfile::tempdir().unwrap();
    let functions = dir.path().join("functions");
    std::fs::create_dir(&functions).unwrap();
    for entry in std::fs::read_dir("examples/functions").unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), functions.join(entry.file_name())).unwrap();
    }
    let verge = start(dir.path(), &bundled_example_template(&demo.url())).await;

    // The A/B function: the bucket and the viewer's address reach the origin, with verge's
    // forwarding headers.
    let echo = get(verge.addr, "/api/echo?x=1").await;
    assert_eq!(echo.status, 200, "{}", echo.text());
    let seen = echo.json();
    let bucket = seen["headers"]["x-ab-bucket"].as_str().unwrap_or("");
    assert!(bucket == "a" || bucket == "b", "{seen}");
    assert_eq!(seen["headers"]["true-client-ip"], "127.0.0.1", "{seen}");
    assert_eq!(seen["headers"]["via"], "1.1 verge", "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(seen["query"], "x=1");

    // The redirect function answers by itself: the origin is not contacted.
    let hits = demo.hits();
    let moved = get(verge.addr, "/old-page").await;
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), "/api/echo?moved=1");
    assert_eq!(
        moved.header("x-cache"),
        "FunctionGeneratedResponse from verge"
    );
    assert_eq!(demo.hits(), hits);

    // The viewer-response function adds the security headers.
    let home = get(verge.addr, "/").await;
    assert_eq!(home.status, 200);
    assert_eq!(home.header("x-frame-options"), "DENY");
    assert!(
        home.header("strict-transport-security")
            .starts_with("max-age=")
    );

    // The origin group fails over on the statuses the README and the comments name; both of
    // its names are the same origin, which answers the same status again.
    for status in [502, 503] {
        let r = get(verge.addr, &format!("/api/status/{status}")).await;
        assert_eq!(r.status, status, "{}", r.text());
    }
    let failovers = eventually(100, Duration::from_millis(50), || async {
        let m = get(verge.admin, "/metrics").await.text();
        let n = metric(
            &m,
            "verge_proxy_failovers_total{group=\"demo-ha\",reason=\"status\"}",
        );
        (n >= 2.0).then_some(n)
    })
    .await;
    assert_eq!(
        failovers,
        Some(2.0),
        "/api/status/502 and /api/status/503 should each fail over once"
    );
    let healthz = get(verge.admin, "/healthz").await.json();
    assert_eq!(healthz["status"], "ok");
}
