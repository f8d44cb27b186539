//! Origin groups: failover from primary to secondary on a refused connection, a timeout, or a
//! configured status, for GET/HEAD/OPTIONS; the secondary's answer is what the viewer gets.

use std::time::{Duration, Instant};

use crate::support::binary::refusing_addr;
use crate::support::proxy::metric;
use crate::support::{Origin, origin, proxy, request};

fn group_config(primary: &str, secondary: &str, extra: &str) -> String {
    format!(
        r#"
[origins.primary]
url = "{primary}"
read_timeout = "500ms"
{extra}
[origins.secondary]
url = "{secondary}"
[origin_groups.ha]
primary = "primary"
secondary = "secondary"
failover_status = [503]
[[behaviors]]
path_pattern = "*"
origin = "ha"
"#
    )
}

async fn two() -> (Origin, Origin) {
    (
        origin().name("primary").run().await,
        origin().name("secondary").run().await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connection_fails_over_to_the_secondary() {
    let secondary = origin().name("secondary").run().await;
    let (_reserved, dead) = refusing_addr();
    let dead = format!("http://{dead}");
    let p = proxy(&group_config(&dead, &secondary.url(), "")).await;
    let r = p.get("/echo").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), "secondary");
    assert_eq!(r.header("x-cache"), "Miss from verge");
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"verge_proxy_failovers_total{group="ha",reason="connect"}"#
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_status_fails_over_and_the_secondary_answer_is_served() {
    let (primary, secondary) = two().await;
    let p = proxy(&group_config(&primary.url(), &secondary.url(), "")).await;
    let r = p.get("/status/503").await;
    assert_eq!(
        r.status, 503,
        "the secondary also answers 503 for this path"
    );
    assert_eq!(r.header("x-origin"), "secondary");
    assert_eq!((primary.hits(), secondary.hits()), (1, 1));
    // A status not in the list is served from the primary as is.
    let r = p.get("/status/500").await;
    assert_eq!((r.status, r.header("x-origin")), (500, "primary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_fails_over_for_get_but_post_is_never_retried() {
    let (primary, secondary) = two().await;
    // The secondary serves under an origin path, so its `/base/stall` answers (404) at once.
    let secondary_url = format!("{}/base", secondary.url());
    let p = proxy(&group_config(&primary.url(), &secondary_url, "")).await;
    let started = Instant::now();
    let r = p.get("/stall").await;
    assert_eq!(r.header("x-origin"), "secondary", "{}", r.text());
    assert_eq!(r.status, 404);
    assert!(started.elapsed() < Duration::from_secs(10));

    let post = http::Request::post("/stall")
        .header("host", "x")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from("x"),
        )))
        .unwrap();
    let before = secondary.hits();
    let r = request(p.addr, post).await;
    assert_eq!(r.status, 504);
    assert_eq!(secondary.hits(), before, "POST must not fail over");
}
