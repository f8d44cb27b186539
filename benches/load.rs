//! The load benchmark: origin direct, a bare pingora proxy (the floor), verge without functions,
//! and verge with a viewer-request header rewrite, measured with `wrk` on loopback in interleaved
//! rounds of shuffled order; the median per-round ratio to the floor is what counts (absolute
//! req/s on a shared machine does not). Results go to stdout and are appended to `BENCHMARKS.md`.
//!
//! Run: `make bench` (installs wrk), or `cargo bench --bench load`.
//! Knobs: `BENCH_ROUNDS` (default 5), `BENCH_SECONDS` (default 5), `BENCH_CONNECTIONS` (32).
//!
//! The same executable plays the origin and the bare proxy when called with `origin ADDR` or
//! `bare ADDR ORIGIN`, so every system runs in its own process, each proxy on one worker thread.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

type BoxError = Box<dyn std::error::Error>;

const BODY: &[u8] = b"hello from the benchmark origin\n";

/// The edge row's origin-request routing function (Lambda@Edge): every request is sent to
/// the origin by another name (`localhost`, resolved and cached), with its Host, as an A/B
/// router sends bucket "b".
const EDGE_ROUTE_JS: &str = "exports.handler = async (event) => {
    const request = event.Records[0].cf.request;
    const cookie = (request.headers.cookie || []).map((h) => h.value).join(';');
    const bucket = cookie.indexOf('ab=a') >= 0 ? 'a' : 'b';
    if (bucket === 'b') {
        request.origin.custom.domainName = 'localhost';
        request.origin.custom.port = PORT;
        request.origin.custom.protocol = 'http';
        request.headers.host = [{ key: 'Host', value: 'localhost' }];
    }
    return request;
};
";

/// The rewrite every function row runs: two request headers from a cookie-based A/B bucket.
const REWRITE_JS: &str = "function handler(event) {
    var request = event.request;
    var bucket = request.cookies.ab ? request.cookies.ab.value : 'a';
    request.headers['x-ab-bucket'] = { value: bucket };
    request.headers['x-ab-variant'] = { value: 'variant-' + bucket };
    return request;
}
";

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("origin") => run_origin(args[1].parse()?),
        Some("bare") => run_bare(&args[1], args[2].parse()?),
        _ => orchestrate(),
    }
}

/// A minimal keep-alive HTTP/1.1 origin answering every request with a fixed body.
fn run_origin(addr: SocketAddr) -> Result<(), BoxError> {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        loop {
            let (tcp, _) = listener.accept().await?;
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "text/plain")
                            .body(Full::new(bytes::Bytes::from_static(BODY)))
                            .unwrap_or_default(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    })
}

/// The floor: pingora proxying to one peer with nothing else.
struct Bare(SocketAddr);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn run_bare(listen: &str, origin: SocketAddr) -> Result<(), BoxError> {
    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare(origin));
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run(RunArgs::default());
    Ok(())
}

fn free_addr() -> Result<SocketAddr, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Children are killed (by their own pid) when the benchmark ends, however it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_listening(addr: SocketAddr) -> Result<(), BoxError> {
    for _ in 0..200 {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!("{addr} never started listening").into())
}

/// Prefix a command with `taskset -c CPU` when taskset exists and the machine has that core.
/// The child is killed when the benchmark dies, however it dies (Linux parent-death signal), so
/// an interrupted run leaves no server behind.
fn pinned(cpu: usize, program: &str) -> Command {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let has_taskset = Command::new("taskset").arg("-V").output().is_ok();
    let mut c = if has_taskset && cpu < cores {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    };
    die_with_parent(&mut c);
    c
}

#[expect(
    unsafe_code,
    reason = "prctl(2) between fork and exec has no safe wrapper"
)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_ms(v: &str) -> f64 {
    let num: f64 = v
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .unwrap_or(f64::NAN);
    if v.ends_with("us") {
        num / 1000.0
    } else if v.ends_with("ms") {
        num
    } else if v.ends_with('s') {
        num * 1000.0
    } else {
        f64::NAN
    }
}

fn wrk(url: &str, seconds: u64, connections: u32) -> Result<Wrk, BoxError> {
    let out = pinned(1, "wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut w = Wrk {
        rps: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            ["Requests/sec:", v] => w.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => w.p50_ms = parse_ms(v),
            ["99%", v] => w.p99_ms = parse_ms(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse().unwrap_or(1),
            ["Socket", "errors:", ..] => w.errors += 1,
            _ => {}
        }
    }
    if w.rps == 0.0 {
        return Err(format!("wrk gave no result for {url}:\n{text}").into());
    }
    Ok(w)
}

fn median(mut v: Vec<f64>) -> f64 {
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

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Start one verge process named `name` in front of `origin`; `behavior_extra` is appended to
/// its only behavior (a function attachment and its definition). Access log on, to a file.
fn start_verge(
    procs: &mut Procs,
    target: &std::path::Path,
    name: &str,
    origin: SocketAddr,
    behavior_extra: &str,
) -> Result<SocketAddr, BoxError> {
    let (listen, admin) = (free_addr()?, free_addr()?);
    let config = target.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"{listen}\"]\nthreads = 1\n[admin]\nlisten = \"{admin}\"\n\
             [logging]\naccess_log = true\n[origins.o]\nurl = \"http://{origin}\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n{behavior_extra}"
        ),
    )?;
    let log = std::fs::File::create(target.join(format!("{name}-access.log")))?;
    procs.0.push(
        pinned(0, env!("CARGO_BIN_EXE_verge"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()?,
    );
    Ok(listen)
}

fn orchestrate() -> Result<(), BoxError> {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("load benchmark skipped: wrk is not installed (`make bench` installs it)");
        return Ok(());
    }
    let rounds = env_u64("BENCH_ROUNDS", 5);
    let seconds = env_u64("BENCH_SECONDS", 5);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as u32;
    let me = std::env::current_exe()?;
    let me = me.to_string_lossy();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&target)?;

    let origin = free_addr()?;
    let bare = free_addr()?;
    let mut procs = Procs(Vec::new());
    procs.0.push(
        pinned(1, &me)
            .args(["origin", &origin.to_string()])
            .stdout(Stdio::null())
            .spawn()?,
    );
    procs.0.push(
        pinned(0, &me)
            .args(["bare", &bare.to_string(), &origin.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::fs::write(target.join("rewrite.js"), REWRITE_JS)?;
    let verge_none = start_verge(&mut procs, &target, "verge-none", origin, "")?;
    let verge_rewrite = start_verge(
        &mut procs,
        &target,
        "verge-rewrite",
        origin,
        "viewer_request = \"rewrite\"\n[functions.rewrite]\ncode = \"rewrite.js\"\n",
    )?;
    std::fs::write(
        target.join("edge-route.js"),
        EDGE_ROUTE_JS.replace("PORT", &origin.port().to_string()),
    )?;
    let verge_edge = start_verge(
        &mut procs,
        &target,
        "verge-edge-route",
        origin,
        "origin_request = \"route\"\n[functions.route]\nruntime = \"lambda-edge\"\ncode = \"edge-route.js\"\n",
    )?;
    for addr in [origin, bare, verge_none, verge_rewrite, verge_edge] {
        wait_listening(addr)?;
    }

    let systems = [
        ("origin", format!("http://{origin}/")),
        ("pingora-bare", format!("http://{bare}/")),
        ("verge-none", format!("http://{verge_none}/")),
        ("verge-rewrite", format!("http://{verge_rewrite}/")),
        ("verge-edge-route", format!("http://{verge_edge}/")),
    ];
    // Warm up connections and pools.
    for (_, url) in &systems {
        wrk(url, 1, connections)?;
    }
    let mut results: Vec<Vec<Wrk>> = systems.iter().map(|_| Vec::new()).collect();
    let started = Instant::now();
    for round in 0..rounds {
        // A fixed-seed rotation + swap gives a different order each round, reproducibly.
        let mut order: Vec<usize> = (0..systems.len()).collect();
        order.rotate_left(round as usize % systems.len());
        if round % 2 == 1 {
            order.swap(0, 1);
        }
        for &i in &order {
            let w = wrk(&systems[i].1, seconds, connections)?;
            eprintln!(
                "round {}/{rounds}: {:<13} {:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms",
                round + 1,
                systems[i].0,
                w.rps,
                w.p50_ms,
                w.p99_ms
            );
            results[i].push(w);
        }
    }

    let floor = 1;
    let mut table = String::new();
    table.push_str(
        "| system | median req/s | median ratio to pingora-bare | p50 ms | p99 ms | errors |\n",
    );
    table.push_str("|---|---:|---:|---:|---:|---:|\n");
    let mut json_rows = Vec::new();
    for (i, (name, _)) in systems.iter().enumerate() {
        let ratios: Vec<f64> = results[i]
            .iter()
            .zip(&results[floor])
            .map(|(a, b)| a.rps / b.rps)
            .collect();
        let ratio = median(ratios);
        let rps = median(results[i].iter().map(|w| w.rps).collect());
        let p50 = median(results[i].iter().map(|w| w.p50_ms).collect());
        let p99 = median(results[i].iter().map(|w| w.p99_ms).collect());
        let errors: u64 = results[i].iter().map(|w| w.errors).sum();
        table.push_str(&format!(
            "| {name} | {rps:.0} | {ratio:.3} | {p50:.2} | {p99:.2} | {errors} |\n"
        ));
        json_rows.push(format!(
            "{{\"system\":\"{name}\",\"rps\":{rps:.1},\"ratio_to_floor\":{ratio:.4},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"errors\":{errors}}}"
        ));
    }
    std::fs::write(
        target.join("results.json"),
        format!("{{\"rows\":[{}]}}\n", json_rows.join(",")),
    )?;

    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
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
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let over_none = |row: usize| {
        median(
            results[row]
                .iter()
                .zip(&results[2])
                .map(|(r, n)| r.rps / n.rps)
                .collect(),
        )
    };
    table.push_str(&format!(
        "\nverge-rewrite / verge-none (median of per-round ratios): **{:.3}**; \
         verge-edge-route / verge-none: **{:.3}**\n",
        over_none(3),
        over_none(4)
    ));
    let section = format!(
        "\n## Load: verge vs the pingora floor — {date}\n\n\
         commit `{commit}`, {cores} cores ({cpu}); `BENCH_ROUNDS={rounds} BENCH_SECONDS={seconds} \
         BENCH_CONNECTIONS={connections} cargo bench --bench load` ({:.0} s). Each proxy: one \
         worker thread, pinned to core 0 (verge's function workers share it); origin and wrk on \
         core 1; verge writes its access log to a file.\n\n{table}",
        started.elapsed().as_secs_f64()
    );
    print!("{section}");
    let mut md = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md"))?;
    md.write_all(section.as_bytes())?;
    Ok(())
}
