//! The report: per system the median req/s, the median of per-round ratios to the pingora floor
//! (and to nginx bare for the nginx rows), what its functions add in µs per request over its own
//! proxy, open-loop p50/p99, compute utilization for verge rows; the targets of issue #5; the
//! runaway stress test. Appended to `BENCHMARKS.md`, and written to
//! `target/bench/results.json`.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::BoxError;
use crate::measure::{Sample, access_log_field, median, quantile};
use crate::runaway::{BUDGET_MS, Stress};
use crate::systems::System;

/// Everything a run produced.
pub struct Run<'a> {
    pub dir: &'a Path,
    pub systems: &'a [System],
    pub samples: &'a [Vec<Sample>],
    pub stress: &'a [Stress],
    pub command: String,
    pub elapsed: Duration,
}

struct Row {
    name: &'static str,
    rps: f64,
    ratio_to_floor: f64,
    ratio_to_nginx_bare: Option<f64>,
    overhead_us: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
    cu: Option<(f64, f64)>,
    /// Median share of core 1 busy while this row was timed (%).
    load_core_busy_pct: f64,
    unexpected: u64,
}

fn index_of(run: &Run, name: &str) -> Option<usize> {
    run.systems.iter().position(|s| s.name == name)
}

/// A timed interval in which the hypervisor took more than this share of core 0 measured the
/// host, not the proxy: protocol §4.4 drops such rounds.
const STEAL_LIMIT_PCT: f64 = 5.0;

fn clean(s: &Sample) -> bool {
    s.steal_pct <= STEAL_LIMIT_PCT
}

/// Median over rounds of `row`'s req/s over `floor`'s, leaving out rounds where either
/// interval had high steal (NaN, shown as such and failing its target, when none is left).
fn ratio(run: &Run, row: usize, floor: &str) -> f64 {
    let Some(f) = index_of(run, floor) else {
        return f64::NAN;
    };
    let pairs = run.samples[row]
        .iter()
        .zip(&run.samples[f])
        .filter(|(a, b)| clean(a) && clean(b))
        .map(|(a, b)| a.rps / b.rps);
    median(pairs.collect())
}

/// Median share of core 1 (the origin and the load generators) busy while system `i` was
/// timed, over all its rounds (%).
fn median_load_busy(run: &Run, i: usize) -> f64 {
    median(
        run.samples[i]
            .iter()
            .map(|s| s.load_core_busy_pct)
            .collect(),
    )
}

/// Median req/s of a system over its clean rounds (NaN when none is).
fn median_rps(run: &Run, i: usize) -> f64 {
    median(
        run.samples[i]
            .iter()
            .filter(|s| clean(s))
            .map(|s| s.rps)
            .collect(),
    )
}

fn rows(run: &Run) -> Vec<Row> {
    let rps = |i: usize| median_rps(run, i);
    run.systems
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let with_functions =
                s.floor != s.name && s.name != "origin" && s.name != "pingora-bare";
            Row {
                name: s.name,
                rps: rps(i),
                ratio_to_floor: ratio(run, i, "pingora-bare"),
                ratio_to_nginx_bare: s
                    .name
                    .starts_with("nginx")
                    .then(|| ratio(run, i, "nginx-bare")),
                overhead_us: with_functions
                    .then(|| index_of(run, s.floor))
                    .flatten()
                    .map(|f| 1e6 / rps(i) - 1e6 / rps(f)),
                p50_ms: median(run.samples[i].iter().map(|s| s.p50_ms).collect()),
                p99_ms: median(run.samples[i].iter().map(|s| s.p99_ms).collect()),
                // Lambda@Edge has a timeout, not a CPU budget: a row of edge functions only
                // logs 0, shown as "—".
                cu: s
                    .verge_log
                    .as_ref()
                    .filter(|_| with_functions)
                    .map(|log| access_log_field(log, "compute_utilization", "/"))
                    .filter(|cu| cu.iter().any(|&v| v > 0.0))
                    .map(|cu| (quantile(cu.clone(), 0.5), quantile(cu, 0.99))),
                load_core_busy_pct: median_load_busy(run, i),
                unexpected: run.samples[i].iter().map(|s| s.unexpected).sum(),
            }
        })
        .collect()
}

/// The short form for `BENCH_ONLY=rows`: per system its median req/s and median per-round ratio
/// to the floor, and what it adds per request over its own proxy when that proxy was measured.
pub fn summary(systems: &[System], samples: &[Vec<Sample>]) -> String {
    let run = Run {
        dir: Path::new("."),
        systems,
        samples,
        stress: &[],
        command: String::new(),
        elapsed: Duration::ZERO,
    };
    let mut out = String::new();
    for row in rows(&run) {
        out += &format!(
            "{:<18} {:>8.0} req/s  {:.3}x pingora-bare  added {} us/req  unexpected {}\n",
            row.name,
            row.rps,
            row.ratio_to_floor,
            fmt_opt(row.overhead_us, 1),
            row.unexpected
        );
    }
    out
}

/// How busy core 1 (the origin and the load generators: everything but the proxy under test)
/// was while `name` and verge-none were timed, medians over their rounds. The origin check
/// above compares rates; this says whether the load side was near its limit for the fastest
/// row, and how much headroom it had for verge's.
fn load_core_note(run: &Run, name: &str) -> String {
    let busy = |row: &str| index_of(run, row).map_or(f64::NAN, |i| median_load_busy(run, i));
    format!(
        "; core 1 (origin and load generators) was {:.0}% busy while {name} was timed, {:.0}% \
         while verge-none was (medians)",
        busy(name),
        busy("verge-none")
    )
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$}"))
}

fn shell(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Core 0's steal time over the timed intervals: the median, the worst with where it was, and
/// how many intervals were left out of the medians for it.
fn steal_summary(run: &Run) -> String {
    let mut worst: Option<(f64, &str, usize)> = None;
    let mut all = Vec::new();
    for (system, samples) in run.systems.iter().zip(run.samples) {
        for (round, s) in samples.iter().enumerate() {
            all.push(s.steal_pct);
            if worst.is_none_or(|(w, _, _)| s.steal_pct > w) {
                worst = Some((s.steal_pct, system.name, round + 1));
            }
        }
    }
    let dropped = all.iter().filter(|&&p| p > STEAL_LIMIT_PCT).count();
    let intervals = all.len();
    match worst {
        Some((w, name, round)) => format!(
            "Host steal on core 0 during timed intervals: median {:.1}%, worst {w:.1}% \
             ({name}, round {round}); {dropped} of {intervals} intervals over {STEAL_LIMIT_PCT}% \
             are left out of the req/s medians and of the ratios (with their round's floor).",
            median(all)
        ),
        None => String::new(),
    }
}

/// Write the report; returns the Markdown section appended to `BENCHMARKS.md`.
pub fn write(run: &Run) -> Result<String, BoxError> {
    let rows = rows(run);
    let by_name = |n: &str| rows.iter().find(|r| r.name == n);
    let overhead = |n: &str| by_name(n).and_then(|r| r.overhead_us);

    let mut table = String::from(
        "| system | req/s | ratio to pingora-bare | ratio to nginx-bare | added µs/req over its proxy | p50 ms | p99 ms | compute util. p50/p99 % | unexpected |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {}{} | {:.0} | {:.3} | {} | {} | {:.2} | {:.2} | {} | {} |\n",
            r.name,
            if r.unexpected > 0 { " **FAILED**" } else { "" },
            r.rps,
            r.ratio_to_floor,
            fmt_opt(r.ratio_to_nginx_bare, 3),
            fmt_opt(r.overhead_us, 1),
            r.p50_ms,
            r.p99_ms,
            r.cu.map_or_else(|| "—".to_owned(), |(a, b)| format!("{a:.0} / {b:.0}")),
            r.unexpected
        ));
    }

    let none_ratio = by_name("verge-none").map_or(f64::NAN, |r| r.ratio_to_floor);
    let rewrite_ratio = by_name("verge-rewrite").map_or(f64::NAN, |r| r.ratio_to_floor);
    let verdict = met;
    let compare = |verge: &str, njs: &str| {
        let (v, n) = (overhead(verge), overhead(njs));
        let ok = matches!((v, n), (Some(v), Some(n)) if v <= n);
        (v, n, ok)
    };
    let of_none = |row: &str| index_of(run, row).map_or(f64::NAN, |i| ratio(run, i, "verge-none"));
    let vr_rewrite = of_none("verge-vr-rewrite");
    let edge_route = of_none("verge-edge-route");
    let (rw_v, rw_n, rw_ok) = compare("verge-rewrite", "nginx-njs-rewrite");
    let (jwt_v, jwt_n, jwt_ok) = compare("verge-jwt", "nginx-njs-jwt");
    let origin_rps = by_name("origin").map_or(f64::NAN, |r| r.rps);
    let fastest = rows
        .iter()
        .filter(|r| r.name != "origin")
        .max_by(|a, b| a.rps.total_cmp(&b.rps));
    let fastest_proxy = fastest.map_or(f64::NAN, |r| r.rps);
    let mut targets = format!(
        "- the origin is not the bottleneck: {origin_rps:.0} req/s direct vs {fastest_proxy:.0} \
         for the fastest proxy (≥ 1.5× needed): {}{}\n",
        verdict(origin_rps >= 1.5 * fastest_proxy),
        fastest
            .map(|r| load_core_note(run, r.name))
            .unwrap_or_default()
    );
    targets += &format!(
        "- verge-none ≥ 0.95× pingora-bare: **{none_ratio:.3}** — {}\n\
         - rewrite overhead, verge ≤ njs: {} µs vs {} µs — {}\n\
         - JWT overhead, verge ≤ njs: {} µs vs {} µs — {}\n\
         - stretch, verge-rewrite ≥ 0.85× pingora-bare: **{rewrite_ratio:.3}** — {}\n\
         - issue #3, verge-vr-rewrite ≥ 0.65× verge-none: **{vr_rewrite:.3}** — {}\n\
         - issue #4, verge-edge-route ≥ 0.6× verge-none: **{edge_route:.3}** — {}\n",
        verdict(none_ratio >= 0.95),
        fmt_opt(rw_v, 1),
        fmt_opt(rw_n, 1),
        verdict(rw_ok),
        fmt_opt(jwt_v, 1),
        fmt_opt(jwt_n, 1),
        verdict(jwt_ok),
        verdict(rewrite_ratio >= 0.85),
        verdict(vr_rewrite >= 0.65),
        verdict(edge_route >= 0.6),
    );
    for s in run.stress {
        targets.push_str(&stress_line(s));
    }

    let json_rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "system": r.name,
                "rps": r.rps,
                "ratio_to_floor": r.ratio_to_floor,
                "ratio_to_nginx_bare": r.ratio_to_nginx_bare,
                "overhead_us": r.overhead_us,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "compute_utilization_p50": r.cu.map(|c| c.0),
                "compute_utilization_p99": r.cu.map(|c| c.1),
                "load_core_busy_pct": r.load_core_busy_pct,
                "unexpected": r.unexpected,
                "failed": r.unexpected > 0,
            })
        })
        .collect();
    let json_stress: Vec<Value> = run
        .stress
        .iter()
        .map(|s| {
            json!({
                "throttle": s.throttle,
                "pairs": s.pairs.iter().map(|p| json!({
                    "baseline_p99_ms": p.baseline_p99_ms,
                    "p99_ms": p.p99_ms,
                    "p99_ratio": p.ratio(),
                    "steal_pct": [p.steal_pct.0, p.steal_pct.1],
                })).collect::<Vec<_>>(),
                "p99_ratio": s.p99_ratio(),
                "runaways": s.runaways,
                "runaway_max_ms": s.runaway_max_ms,
                "late_ms": s.late_ms,
                "budget_ms": BUDGET_MS,
                "unexpected": s.unexpected,
            })
        })
        .collect();
    std::fs::write(
        run.dir.join("results.json"),
        serde_json::to_string_pretty(&json!({ "rows": json_rows, "runaway": json_stress }))?,
    )?;

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let steal = steal_summary(run);
    let section = format!(
        "\n## Load: verge vs pingora and nginx + njs — {}\n\n\
         commit `{}`, {cores} cores ({cpu}); `{}` ({:.0} s). One worker per proxy on core 0 (verge's \
         function threads share it); the nginx origin, wrk and the open-loop generator on core 1. \
         Access logs on everywhere (buffered). p50/p99 are open-loop at a fixed rate. \
         \"added µs/req\" = 1e6/req/s − 1e6/req/s of its own proxy (verge-none, nginx-bare). \
         {steal}\n\n\
         {table}\nTargets (issue #5):\n\n{targets}",
        shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        shell("git", &["rev-parse", "--short", "HEAD"]),
        run.command,
        run.elapsed.as_secs_f64()
    );
    let mut md = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md"))?;
    md.write_all(section.as_bytes())?;
    Ok(section)
}

/// How many runaways were late, and how late (the slowest few).
fn late(late_ms: &[f64]) -> String {
    if late_ms.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = late_ms
        .iter()
        .take(5)
        .map(|ms| format!("{ms:.2}"))
        .collect();
    let more = if late_ms.len() > 5 { ", …" } else { "" };
    format!("; {} late: {}{more} ms", late_ms.len(), shown.join(", "))
}

/// One runaway stress run as the report's line: the p99 ratio and the slowest runaway, each
/// against its target.
pub fn stress_line(s: &Stress) -> String {
    let within = s.runaway_max_ms <= BUDGET_MS + 1.0;
    let (p99, baseline) = s
        .median_pair()
        .map_or((f64::NAN, f64::NAN), |p| (p.p99_ms, p.baseline_p99_ms));
    let each: Vec<String> = s
        .pairs
        .iter()
        .map(|p| format!("{:.2}", p.ratio()))
        .collect();
    format!(
        "- runaway stress, throttling {}: p99 of the 99% {:.2} ms vs {:.2} ms without runaways = \
         **{:.2}×**, the median of {} interleaved pairs ({}) (≤ 1.5×: {}); {} runaways, slowest \
         answered {:.2} ms after dispatch (budget {BUDGET_MS} ms + 1 ms: {}{}); host steal on \
         core 0 at most {:.1}% in any pass{}\n",
        if s.throttle { "on" } else { "off" },
        p99,
        baseline,
        s.p99_ratio(),
        s.pairs.len(),
        each.join(", "),
        met(s.p99_ratio() <= 1.5),
        s.runaways,
        s.runaway_max_ms,
        met(within && s.runaways > 0),
        late(&s.late_ms),
        s.worst_steal_pct(),
        if s.unexpected > 0 {
            format!("; **{} unexpected answers**", s.unexpected)
        } else {
            String::new()
        }
    )
}

/// A target's verdict as the report writes it.
fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}
