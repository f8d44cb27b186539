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
    /// Share of core 1 (the origin and `wrk`) that was busy during the timed `wrk`, in %.
    pub load_core_busy_pct: f64,
}

/// One core's time from `/proc/stat`, in jiffies.
#[derive(Clone, Copy, Default)]
struct CoreTime {
    /// Taken by the hypervisor.
    steal: u64,
    /// Idle or waiting on I/O: time the core could have run something.
    idle: u64,
    /// All of user, nice, system, idle, iowait, irq, softirq and steal.
    total: u64,
}

/// `cpuN`'s time (zeros where it cannot be read).
fn core_time(stat: &str, cpu: usize) -> CoreTime {
    let prefix = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&prefix)) else {
        return CoreTime::default();
    };
    // user nice system idle iowait irq softirq steal ...
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    CoreTime {
        steal: field(7),
        idle: field(3) + field(4),
        total: fields.iter().take(8).sum(),
    }
}

/// Both cores' time: core 0 runs the proxy under test, core 1 the origin and the load
/// generators.
fn cores_now() -> [CoreTime; 2] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    [core_time(&stat, 0), core_time(&stat, 1)]
}

/// `part` of `whole` jiffies between two readings, in % (0 when no time passed).
fn share(part: (u64, u64), whole: (u64, u64)) -> f64 {
    let whole = whole.1.saturating_sub(whole.0);
    if whole == 0 {
        return 0.0;
    }
    100.0 * part.1.saturating_sub(part.0) as f64 / whole as f64
}

/// What the cores did while something was measured, in % of each core's time.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoreShares {
    /// Core 0 (the proxy's) taken by the hypervisor: a round slowed by the host shows as such.
    pub steal0: f64,
    /// Core 1 (the origin's and the load generators') not idle: near 100 the load side, not
    /// the proxy, may be what limits the rate.
    pub busy1: f64,
}

/// Run `f`, and give what the cores did meanwhile.
pub fn with_cores<T>(f: impl FnOnce() -> T) -> (T, CoreShares) {
    let before = cores_now();
    let result = f();
    let after = cores_now();
    let (b0, a0, b1, a1) = (before[0], after[0], before[1], after[1]);
    let shares = CoreShares {
        steal0: share((b0.steal, a0.steal), (b0.total, a0.total)),
        busy1: 100.0 - share((b1.idle, a1.idle), (b1.total, a1.total)),
    };
    (result, shares)
}

/// Run `f`, and give the share of core 0's time the host took meanwhile (steal, %).
pub fn with_steal<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let (result, shares) = with_cores(f);
    (result, shares.steal0)
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
    let (wrk_result, cores) = with_cores(|| wrk(addr, seconds, connections));
    let (rps, wrk_unexpected) = wrk_result?;
    let (main, _) = open_loop(addr, rate, seconds, "/", None)?;
    Ok(Sample {
        rps,
        p50_ms: main["p50_ms"].as_f64().unwrap_or(f64::NAN),
        p99_ms: main["p99_ms"].as_f64().unwrap_or(f64::NAN),
        unexpected: wrk_unexpected + unexpected_in(&main, "200"),
        steal_pct: cores.steal0,
        load_core_busy_pct: cores.busy1,
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
