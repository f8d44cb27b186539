//! Metrics on the admin listener and one structured access-log line per request.

use std::time::Duration;

use crate::support::binary::{free_addr, start};
use crate::support::proxy::metric;
use crate::support::{eventually, get, origin};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_access_log_fields_after_traffic() {
    let primary = origin().name("primary").run().await;
    let secondary = origin().name("secondary").run().await;
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
            free_addr()
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

    let m = get(verge.admin, "/metrics").await.text();
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
