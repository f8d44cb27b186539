//! The load benchmark (`make bench`): verge against the bare pingora floor and nginx + njs on the
//! same machine in the same run, plus the runaway stress test. The spec is
//! `../shared/spec/peers-and-benchmarks.md` §4 and issue #5; the map:
//!
//! - [`systems`]: the shared nginx origin, the floor, the verge rows, the nginx rows — one
//!   worker each, pinned to core 0; origin and load generators on core 1;
//! - [`check`]: before timing, every system answers the fixed request identically and the JWT
//!   rows refuse bad tokens (after a bounded wait for systems still answering 503 while they
//!   start);
//! - [`measure`]: per round and system, `wrk` (req/s) and [`openloop`] (p50/p99 at a fixed
//!   rate); unexpected statuses mark a row failed;
//! - [`runaway`]: 1% runaways among rewrites, throttling off and on;
//! - [`report`]: the table appended to `BENCHMARKS.md` and `target/bench/results.json`.
//!
//! Knobs: `BENCH_ROUNDS` (5), `BENCH_SECONDS` (5), `BENCH_WARMUP` (3 s of load discarded
//! before each timed interval), `BENCH_CONNECTIONS` (32, wrk),
//! `BENCH_RATE` (500 req/s, open loop: below every row's capacity, or its
//! latency is only its queue), `BENCH_OPEN_CONNECTIONS` (64), `BENCH_STRESS_PAIRS` (3: pairs of
//! passes without and with runaways in each stress run), `BENCH_ONLY=stress` (only the runaway
//! stress test, printed and not appended to `BENCHMARKS.md`: for iterating on it),
//! `BENCH_ONLY=verge-none,verge-noop` (only those rows and the floor, no stress test, a short
//! ratio summary printed and nothing appended: for iterating on one row's cost).
//! Every process it starts is stopped by its own pid when it ends (and by the kernel if it dies).

mod bare;
mod check;
mod client;
#[path = "../support/jwt.rs"]
mod jwt_fixture;
mod measure;
mod openloop;
mod procs;
mod report;
mod runaway;
mod systems;

use std::time::Instant;

use measure::Sample;
use procs::{Procs, wait_listening};

type BoxError = Box<dyn std::error::Error>;

/// The allocator verge runs on, so the bare pingora floor (this binary's `bare` mode) differs
/// from verge by verge's own work, not by its allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("bare") if args.len() == 4 => bare::run(&args[1], args[2].parse()?, &args[3]),
        Some("openloop") if args.len() >= 5 => openloop::run(openloop::Plan {
            addr: args[1].parse()?,
            rate: args[2].parse()?,
            seconds: args[3].parse()?,
            connections: env_u64("BENCH_OPEN_CONNECTIONS", 64) as usize,
            path: args[4].clone(),
            alt: match (args.get(5), args.get(6)) {
                (Some(p), Some(every)) => Some((p.clone(), every.parse()?)),
                _ => None,
            },
            headers: client::fixed_headers()
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
        }),
        // The fixed request's headers, one `Name: value` per line, for tools that replay it
        // (scripts/proxy-instructions.sh).
        Some("headers") if args.len() == 1 => {
            for (name, value) in client::fixed_headers() {
                println!("{name}: {value}");
            }
            Ok(())
        }
        _ => orchestrate(),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A different order each round, reproducibly (Fisher–Yates on a fixed-seed LCG).
fn shuffled(n: usize, round: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = round
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (state >> 33) as usize % (i + 1);
        order.swap(i, j);
    }
    order
}

fn orchestrate() -> Result<(), BoxError> {
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("wrk is not installed (`make bench` installs it)".into());
    }
    systems::nginx_available()?;
    let rounds = env_u64("BENCH_ROUNDS", 5);
    let seconds = env_u64("BENCH_SECONDS", 5);
    let warmup = env_u64("BENCH_WARMUP", 3);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as u32;
    let rate = env_u64("BENCH_RATE", 500);
    let stress_pairs = env_u64("BENCH_STRESS_PAIRS", 3);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();

    let mut procs = Procs::default();
    let origin = systems::start_origin(&mut procs, &dir)?;
    systems::write_functions(&dir, origin)?;
    if std::env::var("BENCH_ONLY").is_ok_and(|only| only == "stress") {
        for throttle in [false, true] {
            let stress = runaway::run(
                &mut procs,
                &dir,
                origin,
                throttle,
                rate,
                seconds,
                stress_pairs,
            )?;
            print!("{}", report::stress_line(&stress));
        }
        return Ok(());
    }
    let mut all = vec![systems::System {
        name: "origin",
        addr: origin,
        work: systems::Work::None,
        floor: "pingora-bare",
        verge_log: None,
    }];
    all.push(systems::start_bare(&mut procs, &dir, origin)?);
    all.extend(systems::start_verge_rows(
        &mut procs,
        &dir,
        origin,
        connections.clamp(1, 1024),
    )?);
    all.extend(systems::start_nginx_rows(&mut procs, &dir, origin)?);
    let only = std::env::var("BENCH_ONLY").ok();
    if let Some(only) = &only {
        let keep: Vec<&str> = only.split(',').map(str::trim).collect();
        if let Some(unknown) = keep.iter().find(|k| !all.iter().any(|s| s.name == **k)) {
            return Err(format!("BENCH_ONLY: no system named {unknown:?}").into());
        }
        all.retain(|s| s.name == "pingora-bare" || keep.contains(&s.name));
    }
    for s in &all {
        wait_listening(s.addr)?;
    }
    procs.check_alive()?;
    eprintln!("bench: {} systems up; checking their answers", all.len());
    for s in &all {
        check::wait_started(s)?;
        check::answers_identically(s)?;
    }

    eprintln!("bench: warming up");
    for s in &all {
        measure::wrk(s.addr, 1, connections)?;
    }
    let mut samples: Vec<Vec<Sample>> = all.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for i in shuffled(all.len(), round) {
            let s = measure::sample(all[i].addr, warmup, seconds, connections, rate)?;
            eprintln!(
                "round {}/{rounds}: {:<18} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  steal {:.1}%  core 1 busy {:.0}%{}",
                round + 1,
                all[i].name,
                s.rps,
                s.p50_ms,
                s.p99_ms,
                s.steal_pct,
                s.load_core_busy_pct,
                if s.unexpected > 0 {
                    format!("  {} UNEXPECTED", s.unexpected)
                } else {
                    String::new()
                }
            );
            samples[i].push(s);
        }
        procs.check_alive()?;
    }
    if only.is_some() {
        print!("{}", report::summary(&all, &samples));
        return Ok(());
    }

    eprintln!("bench: runaway stress (throttling off, then on)");
    let stress = [
        runaway::run(&mut procs, &dir, origin, false, rate, seconds, stress_pairs)?,
        runaway::run(&mut procs, &dir, origin, true, rate, seconds, stress_pairs)?,
    ];
    let section = report::write(&report::Run {
        dir: &dir,
        systems: &all,
        samples: &samples,
        stress: &stress,
        command: format!(
            "BENCH_ROUNDS={rounds} BENCH_SECONDS={seconds} BENCH_WARMUP={warmup} \
             BENCH_CONNECTIONS={connections} BENCH_RATE={rate} make bench"
        ),
        elapsed: started.elapsed(),
    })?;
    print!("{section}");
    Ok(())
}
