//! Hot reload: each request keeps the snapshot it started with; a client loop sees no failure
//! through 20 reloads and the new configuration after each; a bad reload leaves the old one
//! serving, logged and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::client::{Persistent, get_req, try_request};
use crate::support::proxy::metric;
use crate::support::{eventually, origin, proxy, single_origin};

fn to(url: &str) -> String {
    single_origin(url, "idle_timeout = \"1s\"")
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_reloads_under_load_lose_no_request() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let p = proxy(&to(&a.url())).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), p.addr);
        clients.push(tokio::spawn(async move {
            let mut conn = Persistent::connect(addr).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                match conn.get("/echo").await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    for i in 0..20u64 {
        let (target, name) = if i % 2 == 0 { (&b, "b") } else { (&a, "a") };
        let report = p.reload_with(&to(&target.url())).unwrap();
        assert_eq!(report.generation, i + 2);
        let seen = eventually(50, Duration::from_millis(20), || async {
            let r = p.get("/echo").await;
            (r.header("x-origin") == name).then_some(())
        })
        .await;
        assert!(seen.is_some(), "reload {i}: origin {name} never answered");
        // The clients keep going between every two reloads.
        let before = ok.load(Ordering::Relaxed);
        let flowing = eventually(200, Duration::from_millis(5), || async {
            (ok.load(Ordering::Relaxed) >= before + 8).then_some(())
        })
        .await;
        assert!(flowing.is_some(), "reload {i}: the clients stalled");
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, r#"verge_config_reloads_total{result="ok"}"#),
        20.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_reload_keeps_the_old_configuration_serving() {
    let a = origin().name("a").run().await;
    let p = proxy(&to(&a.url())).await;
    let errors = p
        .reload_with(&to(&a.url()).replace("idle_timeout = \"1s\"", "idle_timeout = \"soon\""))
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("verge.toml:3:16: origins.o.idle_timeout"),
        "{errors}"
    );
    let r = p.get("/echo").await;
    assert_eq!((r.status, r.header("x-origin")), (200, "a"));
    assert_eq!(p.state.snapshot().generation, 1);
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, r#"verge_config_reloads_total{result="failed"}"#),
        1.0
    );

    // Fixing the file makes the next reload succeed.
    p.reload_with(&to(&a.url())).unwrap();
    assert_eq!(p.state.snapshot().generation, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_keeps_the_snapshot_it_started_with() {
    let a = origin().name("a").run().await;
    let b = origin().name("b").run().await;
    let p = proxy(&to(&a.url())).await;
    // The slow request starts on `a`'s snapshot; the reload happens while it waits.
    let addr = p.addr;
    let slow = tokio::spawn(async move { try_request(addr, get_req("/stall")).await });
    eventually(100, Duration::from_millis(10), || async {
        (a.hits() >= 1).then_some(())
    })
    .await
    .expect("slow request reached a");
    p.reload_with(&to(&b.url())).unwrap();
    assert_eq!(p.get("/echo").await.header("x-origin"), "b");
    slow.abort();
    assert_eq!(b.hits(), 1, "only the new request went to b");
}
