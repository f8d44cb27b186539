//! The runaway matrix: every kind of runaway a CloudFront Function can be, attached at
//! viewer-request through the real proxy, each answered 503 well before a generous deadline,
//! while a healthy function and plain proxying keep answering during and after. Its own test
//! binary, run with `--test-threads=1` (the Makefile does): runaways leave native work behind
//! on retired threads, and inputs are sized to end within seconds.

#[cfg(test)]
#[path = "it/support/mod.rs"]
#[expect(
    dead_code,
    unused_imports,
    reason = "the shared test support serves the `it` binary too; this one uses part of it"
)]
mod support;

/// Allocations are counted per thread, as the fast tier's memory limit needs.
#[global_allocator]
static ALLOCATOR: verge_functions::alloc_meter::CountingAllocator =
    verge_functions::alloc_meter::CountingAllocator;

#[cfg(test)]
mod matrix {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use crate::support::client::Persistent;
    use crate::support::origin;
    use crate::support::proxy::{metric, proxy_in};

    /// `(name, body of handler)`; each runs once as written and once after `await`.
    const RUNAWAYS: &[(&str, &str)] = &[
        ("spin", "while (true) {}"),
        (
            "spin-caught",
            "try { while (true) {} } catch (x) { return e.request; }",
        ),
        (
            "recursion",
            "function f(n) { return f(n + 1) + 1; } return f(0);",
        ),
        (
            "fib40",
            "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); } return fib(40);",
        ),
        (
            "map-loop",
            "return [1, 2, 3].map(function () { var i = 0; while (true) { i++; } });",
        ),
        (
            "slow-sort",
            "var a = Array.from({length: 5000}, function (_, i) { return (i * 7919) % 5000; }); \
             a.sort(function (x, y) { for (var k = 0; k < 500; k++) {} return y - x; }); return e.request;",
        ),
        ("array-fill", "return new Array(1e8).fill(0).length;"),
        (
            "alloc-loop",
            "var keep = []; while (true) { keep.push('x'.repeat(1000)); }",
        ),
    ];

    const HEALTHY: &str =
        "function handler(e) { e.request.headers['x-healthy'] = {value: '1'}; return e.request; }";

    #[tokio::test(flavor = "multi_thread")]
    async fn runaway_matrix_through_the_proxy() {
        // Each failed function's reason (the error page does not say it) goes to the test's
        // output, shown when it fails: a healthy request answered 503 then says why.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("verge_proxy::stage::function=warn,verge_functions=warn")
            .with_ansi(false)
            .with_test_writer()
            .try_init();
        let o = origin().name("o").run().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!("[origins.o]\nurl = \"{}\"\n", o.url());
        let mut paths = Vec::new();
        for (name, body) in RUNAWAYS {
            for (variant, prefix) in [("sync", ""), ("await", "await Promise.resolve(); ")] {
                let fname = format!("{name}-{variant}");
                std::fs::write(
                    dir.path().join(format!("{fname}.js")),
                    format!("async function handler(e) {{ {prefix}{body} }}"),
                )
                .unwrap();
                config.push_str(&format!(
                    "[[behaviors]]\npath_pattern = \"/run/{fname}\"\norigin = \"o\"\nviewer_request = \"{fname}\"\n\
                     [functions.{fname}]\ncode = \"{fname}.js\"\n"
                ));
                paths.push(format!("/run/{fname}"));
            }
        }
        std::fs::write(dir.path().join("healthy.js"), HEALTHY).unwrap();
        config.push_str(
            "[[behaviors]]\npath_pattern = \"/echo/*\"\norigin = \"o\"\nviewer_request = \"healthy\"\n\
             [functions.healthy]\ncode = \"healthy.js\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n",
        );
        let p = proxy_in(dir, &config).await;

        // Healthy traffic during the whole matrix, on a kept-alive connection.
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        // What each failed healthy request got, so a failure says why.
        let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let healthy = {
            let (stop, ok, failures, addr) = (stop.clone(), ok.clone(), failures.clone(), p.addr);
            tokio::spawn(async move {
                let mut conn = Persistent::connect(addr).await.unwrap();
                while !stop.load(Ordering::Relaxed) {
                    for (path, want) in [("/echo/h", 200), ("/plain", 404)] {
                        match conn.get(path).await {
                            Ok(r) if r.status == want => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                let got = match other {
                                    Ok(r) => format!(
                                        "{} {:?}: {}",
                                        r.status,
                                        r.header("x-cache"),
                                        r.text()
                                    ),
                                    Err(e) => e.to_string(),
                                };
                                failures.lock().unwrap().push(format!("{path}: {got}"));
                            }
                        }
                    }
                }
            })
        };

        for path in &paths {
            let before = ok.load(Ordering::Relaxed);
            let started = Instant::now();
            let r = crate::support::get(p.addr, path).await;
            let took = started.elapsed();
            assert_eq!(r.status, 503, "{path}: {}", r.text());
            let result = r.header("x-cache");
            assert!(
                result == "FunctionThrottledError from verge"
                    || result == "FunctionExecutionError from verge",
                "{path}: {result}"
            );
            assert!(took < Duration::from_secs(3), "{path} took {took:?}");
            // Healthy requests went on while this one ran away (or right after).
            let deadline = Instant::now() + Duration::from_secs(5);
            while ok.load(Ordering::Relaxed) < before + 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(
                ok.load(Ordering::Relaxed) >= before + 2,
                "{path}: healthy traffic stalled"
            );
        }
        stop.store(true, Ordering::Relaxed);
        healthy.await.unwrap();
        let failures = std::mem::take(&mut *failures.lock().unwrap());
        assert!(failures.is_empty(), "healthy requests failed: {failures:?}");

        // The slow sorts passed the hard ceiling: their workers were retired and replaced, and
        // capacity is intact afterwards.
        let m = p.metrics().await;
        assert!(metric(&m, "verge_functions_workers_retired") >= 1.0, "{m}");
        for _ in 0..20 {
            assert_eq!(crate::support::get(p.addr, "/echo/after").await.status, 200);
        }
    }
}
