//! The open-loop load generator (this executable in `openloop` mode, pinned beside the origin):
//! requests are scheduled at a fixed rate whatever the system does, and each latency is
//! measured from the request's scheduled time (a slow answer delays the requests queued behind
//! it, and that counts), over keep-alive connections that reconnect when the server closes.
//! Optionally every `every`-th request goes to another path (the runaway stress test); the two
//! kinds are reported apart.
//!
//! Prints one JSON object: `{"main": GROUP, "alt": GROUP}` with GROUP = `{"count", "p50_ms",
//! "p99_ms", "max_ms", "statuses": {"200": n, …}, "failures"}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::BoxError;

/// What `openloop` was asked to do.
pub struct Plan {
    pub addr: SocketAddr,
    pub rate: u64,
    pub seconds: u64,
    pub connections: usize,
    pub path: String,
    pub alt: Option<(String, u64)>,
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Group {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    failures: u64,
}

impl Group {
    fn json(&mut self) -> String {
        self.latencies_us.sort_unstable();
        // JSON has no NaN: an empty group has null percentiles.
        let pct = |p: f64| -> String {
            if self.latencies_us.is_empty() {
                return "null".into();
            }
            let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
            format!("{:.3}", self.latencies_us[i] as f64 / 1000.0)
        };
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("\"{s}\":{n}"))
            .collect();
        format!(
            "{{\"count\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"statuses\":{{{}}},\"failures\":{}}}",
            self.latencies_us.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0),
            statuses.join(","),
            self.failures
        )
    }
}

/// One request on `conn` (connecting first if needed): the status, or `None` if the exchange
/// failed (the connection is then dropped).
async fn exchange(
    conn: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Option<u16> {
    for _attempt in 0..2 {
        if conn.is_none() {
            *conn = TcpStream::connect(addr).await.ok();
            if let Some(c) = conn.as_ref() {
                let _ = c.set_nodelay(true);
            }
        }
        let tcp = conn.as_mut()?;
        if tcp.write_all(request).await.is_err() {
            // A kept-alive connection the server closed meanwhile: once more on a new one.
            *conn = None;
            continue;
        }
        match read_answer(tcp, buf).await {
            Some((status, close)) => {
                if close {
                    *conn = None;
                }
                return Some(status);
            }
            None => {
                *conn = None;
                return None;
            }
        }
    }
    None
}

/// Read one answer with a `content-length`: its status and whether the server closes.
async fn read_answer(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, bool)> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .ok()?
        .to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let length: usize = field("content-length:")?.parse().ok()?;
    let close = field("connection:").is_some_and(|v| v == "close");
    while buf.len() < head_end + 4 + length {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((status, close))
}

fn request(path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: bench.test\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Run the plan and print its JSON result.
pub fn run(plan: Plan) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(async move {
        let total = plan.rate * plan.seconds;
        let interval = Duration::from_secs_f64(1.0 / plan.rate as f64);
        let (tx, rx) = tokio::sync::mpsc::channel::<(Instant, bool)>(total as usize + 1);
        let rx = Arc::new(Mutex::new(rx));
        let groups = Arc::new(std::sync::Mutex::new([Group::default(), Group::default()]));
        let main_req = Arc::new(request(&plan.path, &plan.headers));
        let alt_req = Arc::new(
            plan.alt
                .as_ref()
                .map_or_else(Vec::new, |(p, _)| request(p, &plan.headers)),
        );
        let mut workers = Vec::new();
        for _ in 0..plan.connections {
            let (rx, groups) = (rx.clone(), groups.clone());
            let (main_req, alt_req) = (main_req.clone(), alt_req.clone());
            let addr = plan.addr;
            workers.push(tokio::spawn(async move {
                let mut conn = None;
                let mut buf = Vec::with_capacity(4096);
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((scheduled, alt)) = next else { return };
                    let req = if alt { &alt_req } else { &main_req };
                    let status = exchange(&mut conn, addr, req, &mut buf).await;
                    let took = scheduled.elapsed().as_micros() as u64;
                    if let Ok(mut g) = groups.lock() {
                        let g = &mut g[usize::from(alt)];
                        match status {
                            Some(s) => {
                                g.latencies_us.push(took);
                                *g.statuses.entry(s).or_default() += 1;
                            }
                            None => g.failures += 1,
                        }
                    }
                }
            }));
        }
        let every = plan.alt.as_ref().map_or(0, |(_, e)| *e);
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            let now = Instant::now();
            // Everything due by now goes out (timers are coarser than the interval).
            while sent < total && start + interval.mul_f64(sent as f64) <= now {
                let alt = every > 0 && sent % every == every - 1;
                let _ = tx.send((start + interval.mul_f64(sent as f64), alt)).await;
                sent += 1;
            }
            tokio::time::sleep_until((start + interval.mul_f64(sent as f64)).into()).await;
        }
        drop(tx);
        // Bounded wait for the last answers.
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
        let mut g = groups.lock().map_err(|_| "results lock poisoned")?;
        let [main, alt] = &mut *g;
        Ok::<_, BoxError>(format!(
            "{{\"main\":{},\"alt\":{}}}",
            main.json(),
            alt.json()
        ))
    })?;
    println!("{out}");
    Ok(())
}
