//! The runaway stress test: at a fixed rate, 1% of requests hit a `while(true){}` viewer-request
//! function while 99% hit the rewrite; once with throttling off (every runaway runs to its
//! budget), once with it on. Reported: the p99 of the well-behaved 99% against the same verge
//! without runaways, and — measured inside verge, from handing the function its invocation to
//! its reply (`function_ms` in the access log) — the slowest runaway against its budget.
//!
//! A p99 from one pass of a few seconds swings by 2× between passes on a shared 2-core host
//! (BENCHMARKS.md, sessions 9–12, with under 1% steal), so passes come in interleaved pairs
//! (without runaways, then with) and the ratio reported is the median of the pairs' ratios
//! (`BENCH_STRESS_PAIRS`, 3 by default). The slowest runaway is the slowest of every pair.

use std::net::SocketAddr;
use std::path::Path;

use crate::BoxError;
use crate::measure::{access_log_field, open_loop, unexpected_in, with_steal};
use crate::procs::{Procs, wait_listening};
use crate::systems::start_verge;

/// The runaway's budget (verge's default, CloudFront's sub-millisecond).
pub const BUDGET_MS: f64 = 0.9;

/// One pair of passes: without runaways, then with them.
pub struct Pair {
    pub baseline_p99_ms: f64,
    pub p99_ms: f64,
    /// Host steal on core 0 (%) in each pass: a pass the host slowed shows as such.
    pub steal_pct: (f64, f64),
}

impl Pair {
    /// p99 with runaways over p99 without.
    pub fn ratio(&self) -> f64 {
        self.p99_ms / self.baseline_p99_ms
    }
}

/// One runaway run.
pub struct Stress {
    pub throttle: bool,
    pub pairs: Vec<Pair>,
    pub runaways: usize,
    pub runaway_max_ms: f64,
    /// The runaways answered later than their budget + 1 ms after dispatch, slowest first:
    /// one outlier or many tell different stories.
    pub late_ms: Vec<f64>,
    /// Unexpected answers: non-200 among the 99%, non-503 among the runaways.
    pub unexpected: u64,
}

impl Stress {
    /// The median of the pairs' ratios of p99 with runaways over p99 without (of an even
    /// count, the higher of the middle two: never flattering), the ratio of [`Self::median_pair`].
    pub fn p99_ratio(&self) -> f64 {
        self.median_pair().map_or(f64::NAN, Pair::ratio)
    }

    /// The pair whose ratio is the median (the upper middle one of an even count), to report
    /// its p99s beside the ratio.
    pub fn median_pair(&self) -> Option<&Pair> {
        let mut by_ratio: Vec<&Pair> = self.pairs.iter().collect();
        by_ratio.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        by_ratio.get(by_ratio.len() / 2).copied()
    }

    /// The most steal seen in any pass.
    pub fn worst_steal_pct(&self) -> f64 {
        self.pairs
            .iter()
            .map(|p| p.steal_pct.0.max(p.steal_pct.1))
            .fold(0.0, f64::max)
    }
}

/// Run the stress test on a fresh verge (`throttle` as given).
pub fn run(
    procs: &mut Procs,
    dir: &Path,
    origin: SocketAddr,
    throttle: bool,
    rate: u64,
    seconds: u64,
    pairs_wanted: u64,
) -> Result<Stress, BoxError> {
    let name = if throttle {
        "verge-runaway-throttled"
    } else {
        "verge-runaway"
    };
    let behaviors = format!(
        "[[behaviors]]\npath_pattern = \"/runaway*\"\norigin = \"o\"\nviewer_request = \"spin\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\nviewer_request = \"rewrite\"\n\
         viewer_response = \"response_header\"\n\
         [functions.spin]\ncode = \"spin.js\"\nthrottle = {throttle}\n\
         [functions.rewrite]\ncode = \"rewrite.js\"\n\
         [functions.response_header]\ncode = \"response-header.js\"\n"
    );
    let (addr, log) = start_verge(procs, dir, name, origin, &behaviors)?;
    wait_listening(addr)?;
    procs.check_alive()?;
    let mut pairs = Vec::new();
    let mut unexpected = 0;
    for _ in 0..pairs_wanted.max(1) {
        let (baseline, steal_baseline) = with_steal(|| open_loop(addr, rate, seconds, "/", None));
        let (baseline, _) = baseline?;
        let (main, steal_main) =
            with_steal(|| open_loop(addr, rate, seconds, "/", Some(("/runaway", 100))));
        let (main, alt) = main?;
        unexpected += unexpected_in(&baseline, "200")
            + unexpected_in(&main, "200")
            + unexpected_in(&alt, "503");
        pairs.push(Pair {
            baseline_p99_ms: baseline["p99_ms"].as_f64().unwrap_or(f64::NAN),
            p99_ms: main["p99_ms"].as_f64().unwrap_or(f64::NAN),
            steal_pct: (steal_baseline, steal_main),
        });
    }
    // The access log is flushed every 10 ms; the open loop has waited for its last answers.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let function_ms = access_log_field(&log, "function_ms", "/runaway");
    let mut late_ms: Vec<f64> = function_ms
        .iter()
        .copied()
        .filter(|&ms| ms > BUDGET_MS + 1.0)
        .collect();
    late_ms.sort_by(|a, b| b.total_cmp(a));
    Ok(Stress {
        throttle,
        pairs,
        runaways: function_ms.len(),
        runaway_max_ms: function_ms.iter().copied().fold(0.0, f64::max),
        late_ms,
        unexpected,
    })
}
