//! One measurement of one system: `wrk` for req/s (closed loop, pinned beside the origin) and
//! the open-loop generator for latency at a fixed rate; both report unexpected statuses.

use std::net::SocketAddr;

use crate::BoxError;
use crate::client::fixed_headers;
use crate::procs::pinned;

/// What one round measured for one system.
#[derive(Clone, Debug)]
pub struct Sample {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 200 (wrk's non-2xx count, the open loop's statuses) and transport
    /// failures.
    pub unexpected: u64,
    /// Share of core 0 (the proxies' core) the hypervisor took during the timed `wrk`, in %
    /// (`/proc/stat` steal), so a round slowed by the host shows as such.
    pub steal_pct: f64,
}

/// Core 0's `(steal, total)` jiffies from `/proc/stat` (zeros where it cannot be read).
fn core0_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu0 ")) else {
        return (0, 0);
    };
    // user nice system idle iowait irq softirq steal ...
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    (
        fields.get(7).copied().unwrap_or(0),
        fields.iter().take(8).sum(),
    )
}

/// Run `f`, and give the share of core 0's time the host took meanwhile (steal, %).
pub fn with_steal<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let (steal0, total0) = core0_jiffies();
    let result = f();
    let (steal1, total1) = core0_jiffies();
    let steal_pct = if total1 > total0 {
        100.0 * (steal1 - steal0) as f64 / (total1 - total0) as f64
    } else {
        0.0
    };
    (result, steal_pct)
}

/// `wrk` for `seconds` with `connections`: (req/s, unexpected answers).
pub fn wrk(addr: SocketAddr, seconds: u64, connections: u32) -> Result<(f64, u64), BoxError> {
    let mut cmd = pinned(1, "wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    for (n, v) in fixed_headers() {
        cmd.args(["-H", &format!("{n}: {v}")]);
    }
    let out = cmd.arg(format!("http://{addr}/")).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut rps, mut unexpected) = (0.0, 0);
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => unexpected += n.parse().unwrap_or(1),
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout N"
                unexpected += rest
                    .iter()
                    .filter_map(|c| c.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if rps == 0.0 {
        return Err(format!("wrk gave no result for {addr}:\n{text}").into());
    }
    Ok((rps, unexpected))
}

/// The open loop's result: `(main, alt)` groups as JSON.
pub fn open_loop(
    addr: SocketAddr,
    rate: u64,
    seconds: u64,
    path: &str,
    alt: Option<(&str, u64)>,
) -> Result<(serde_json::Value, serde_json::Value), BoxError> {
    let me = std::env::current_exe()?;
    let mut cmd = pinned(1, &me.to_string_lossy());
    cmd.args([
        "openloop",
        &addr.to_string(),
        &rate.to_string(),
        &seconds.to_string(),
        path,
    ]);
    if let Some((p, every)) = alt {
        cmd.args([p, &every.to_string()]);
    }
    let out = cmd.output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "the open loop gave no result for {addr} ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((v["main"].clone(), v["alt"].clone()))
}

/// Answers in an open-loop group that were not `expected`, plus failures.
pub fn unexpected_in(group: &serde_json::Value, expected: &str) -> u64 {
    let others: u64 = group["statuses"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(s, _)| s.as_str() != expected)
                .map(|(_, n)| n.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    others + group["failures"].as_u64().unwrap_or(0)
}

/// One round for one system: `warmup` seconds of load discarded (idle pooled connections,
/// caches and lazily started threads settle first, as the protocol asks), then timed.
pub fn sample(
    addr: SocketAddr,
    warmup: u64,
    seconds: u64,
    connections: u32,
    rate: u64,
) -> Result<Sample, BoxError> {
    if warmup > 0 {
        wrk(addr, warmup, connections)?;
    }
    let (wrk_result, steal_pct) = with_steal(|| wrk(addr, seconds, connections));
    let (rps, wrk_unexpected) = wrk_result?;
    let (main, _) = open_loop(addr, rate, seconds, "/", None)?;
    Ok(Sample {
        rps,
        p50_ms: main["p50_ms"].as_f64().unwrap_or(f64::NAN),
        p99_ms: main["p99_ms"].as_f64().unwrap_or(f64::NAN),
        unexpected: wrk_unexpected + unexpected_in(&main, "200"),
        steal_pct,
    })
}

/// The median (NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p`-quantile of `values` (NaN for none).
pub fn quantile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

/// A numeric field of every access-log line in verge's log at `path` whose `path` field
/// starts with `prefix`.
pub fn access_log_field(path: &std::path::Path, field: &str, prefix: &str) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "verge::access")
        .filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
        .filter_map(|l| l[field].as_f64())
        .collect()
}
