//! Metrics on the admin listener and one structured access-log line per request.

use std::time::Duration;

use crate::support::binary::{refusing_addr, start, start_with};
use crate::support::proxy::metric;
use crate::support::{eventually, get, origin};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_access_log_fields_after_traffic() {
    let primary = origin().name("primary").run().await;
    let secondary = origin().name("secondary").run().await;
    let (_reserved, dead) = refusing_addr();
    let dir = tempfile::tempdir().unwrap();
    let verge = start(
        dir.path(),
        &format!(
            r#"
[server]
listen = ["{{listen}}"]
[admin]
listen = "{{admin}}"
[origins.primary]
url = "{}"
[origins.secondary]
url = "{}"
[origins.dead]
url = "http://{}"
[origin_groups.ha]
primary = "primary"
secondary = "secondary"
failover_status = [503]
[[behaviors]]
path_pattern = "/dead/*"
origin = "dead"
[[behaviors]]
path_pattern = "*"
origin = "ha"
"#,
            primary.url(),
            secondary.url(),
            dead
        ),
    )
    .await;
    let ok = get(verge.addr, "/echo?a=1").await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        get(verge.addr, "/status/503").await.header("x-origin"),
        "secondary"
    );
    assert_eq!(get(verge.addr, "/dead/x").await.status, 502);

    // Requests are counted in the logging phase, which may run just after the viewer has its
    // answer: wait (bounded) until all three are counted.
    let m = eventually(100, Duration::from_millis(20), || async {
        let m = get(verge.admin, "/metrics").await.text();
        let counted: f64 = ["2xx", "5xx"]
            .iter()
            .map(|c| {
                metric(
                    &m,
                    &format!(r#"verge_proxy_requests_total{{behavior="*",status_class="{c}"}}"#),
                )
            })
            .sum::<f64>()
            + metric(
                &m,
                r#"verge_proxy_requests_total{behavior="/dead/*",status_class="5xx"}"#,
            );
        (counted >= 3.0).then_some(m)
    })
    .await
    .expect("requests were not all counted");
    assert_eq!(
        metric(
            &m,
            r#"verge_proxy_requests_total{behavior="*",status_class="2xx"}"#
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"verge_proxy_requests_total{behavior="*",status_class="5xx"}"#
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"verge_proxy_requests_total{behavior="/dead/*",status_class="5xx"}"#
        ),
        1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            r#"verge_proxy_origin_duration_seconds_count{origin="primary"}"#
        ) >= 2.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"verge_proxy_origin_errors_total{kind="connect",origin="dead"}"#
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"verge_proxy_failovers_total{group="ha",reason="status"}"#
        ),
        1.0,
        "{m}"
    );
    let health = get(verge.admin, "/healthz").await.json();
    assert_eq!(health["status"], "ok");

    let id = ok.header("x-verge-request-id").to_owned();
    let line = eventually(100, Duration::from_millis(20), || async {
        verge
            .json_lines()
            .into_iter()
            .find(|l| l["target"] == "verge::access" && l["request_id"] == id.as_str())
    })
    .await
    .expect("no access-log line for the request");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/echo");
    assert_eq!(line["behavior"], "*");
    assert_eq!(line["origin"], "primary");
    assert_eq!(line["status"], 200);
    assert_eq!(line["result"], "Miss");
    assert!(line["bytes"].as_u64().unwrap() > 0);
    assert!(line["duration_ms"].as_f64().is_some());
    assert!(line["origin_ms"].as_f64().is_some());
    assert_eq!(line["function_ms"].as_f64(), Some(0.0), "no function ran");

    let failed = eventually(100, Duration::from_millis(20), || async {
        verge
            .json_lines()
            .into_iter()
            .find(|l| l["target"] == "verge::access" && l["path"] == "/dead/x")
    })
    .await
    .expect("no access-log line for the failed request");
    assert_eq!(failed["status"], 502);
    assert_eq!(failed["result"], "Error");
    assert!(!failed["error"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_log_filters_logs_and_the_access_log_has_its_own_switch() {
    let o = origin().run().await;
    let config = |access: bool| {
        format!(
            "[server]\nlisten = [\"{{listen}}\"]\n[admin]\nlisten = \"{{admin}}\"\n\
             [logging]\naccess_log = {access}\n{}",
            crate::support::single_origin(&o.url(), "")
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let quiet = start_with(dir.path(), &config(true), 100, "warn").await;
    let r = get(quiet.addr, "/echo").await;
    let id = r.header("x-verge-request-id").to_owned();
    let access = eventually(100, Duration::from_millis(20), || async {
        quiet
            .json_lines()
            .into_iter()
            .find(|l| l["request_id"] == id.as_str())
    })
    .await;
    assert!(
        access.is_some(),
        "the access log does not depend on RUST_LOG"
    );
    assert!(
        quiet
            .json_lines()
            .iter()
            .all(|l| l["level"] != "INFO" || l["target"] == "verge::access"),
        "RUST_LOG=warn let info lines through"
    );

    let dir = tempfile::tempdir().unwrap();
    let no_access = start_with(dir.path(), &config(false), 100, "info").await;
    get(no_access.addr, "/echo").await;
    // The startup line proves stdout is being read; no access line may follow.
    eventually(100, Duration::from_millis(20), || async {
        no_access
            .json_lines()
            .into_iter()
            .find(|l| l["message"] == "verge is serving")
    })
    .await
    .expect("startup line");
    tokio::time::sleep(crate::support::ACCESS_FLUSH * 5).await;
    assert!(
        no_access
            .json_lines()
            .iter()
            .all(|l| l["target"] != "verge::access"),
        "access_log = false still logged"
    );
}
