//! The systems under test and how each is started: the shared nginx origin, the bare pingora
//! floor, verge with and without functions, nginx bare and nginx + njs. Every proxy gets one
//! worker thread (process) on core 0; the origin and the load generators run on core 1.
//!
//! The function rows do the same work in both runtimes: the rewrite adds two request headers
//! from a cookie-based A/B bucket and one response header; the JWT row checks an HS256 token
//! with the `crypto` module (401 when missing, badly signed or expired).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use crate::BoxError;
use crate::procs::{Procs, free_addr, free_addrs, pinned};

/// The body the origin answers with.
pub const BODY: &str = "hello from the benchmark origin\n";
/// The HS256 secret of the JWT rows.
pub use crate::jwt_fixture::JWT_SECRET;

/// What a system does to the fixed request, for the identity check.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Work {
    /// Nothing: the origin's answer as it is.
    None,
    /// The A/B rewrite (request headers seen by the origin, one response header).
    Rewrite,
    /// The A/B rewrite's viewer-request half alone (request headers seen by the origin).
    RequestRewrite,
    /// The JWT check (the subject forwarded; 401 without a valid token).
    Jwt,
    /// The rewrite plus the edge origin-request and origin-response functions.
    FourHooks,
}

/// One system: its name in the report, its address, what it does, and its floor's name.
pub struct System {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub work: Work,
    /// The row this one's overhead is measured against.
    pub floor: &'static str,
    /// verge's access log, for compute utilization and function times.
    pub verge_log: Option<std::path::PathBuf>,
}

const REWRITE_JS: &str = "function handler(event) {
    var request = event.request;
    var bucket = request.cookies.ab ? request.cookies.ab.value : 'a';
    request.headers['x-ab-bucket'] = { value: bucket };
    request.headers['x-ab-variant'] = { value: 'variant-' + bucket };
    return request;
}
";

const RESPONSE_HEADER_JS: &str = "function handler(event) {
    var bucket = event.request.cookies.ab ? event.request.cookies.ab.value : 'a';
    event.response.headers['x-ab-bucket'] = { value: bucket };
    return event.response;
}
";

const NOOP_JS: &str = "function handler(event) { return event.request; }\n";

/// The same check the instruction counts measure (`benches/support`).
const JWT_JS: &str = crate::jwt_fixture::JWT_CHECK;

/// The 4-hooks row's origin-request function (Lambda@Edge): sends the request to the origin
/// by another name (`localhost`, resolved and cached), with its Host, as an A/B router does.
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

const EDGE_ORIGIN_RESPONSE_JS: &str = "exports.handler = async (event) => {
    const response = event.Records[0].cf.response;
    response.headers['x-origin-response'] = [{ key: 'X-Origin-Response', value: 'seen' }];
    return response;
};
";

/// The runaway of the stress test.
pub const SPIN_JS: &str = "function handler(event) { while (true) {} }\n";

/// The njs module: the same rewrite and JWT logic.
const NJS: &str = "var crypto = require('crypto');
var SECRET = 'SECRET_VALUE';
function bucketOf(r) {
    var m = /(?:^|;\\s*)ab=([^;]*)/.exec(r.headersIn.Cookie || '');
    return m ? m[1] : 'a';
}
function bucket(r) { return bucketOf(r); }
function variant(r) { return 'variant-' + bucketOf(r); }
function responseHeader(r) { r.headersOut['X-Ab-Bucket'] = bucketOf(r); }
function jwtSub(r) {
    var auth = r.headersIn.Authorization || '';
    if (auth.indexOf('Bearer ') !== 0) { return ''; }
    var parts = auth.slice(7).split('.');
    if (parts.length !== 3) { return ''; }
    var expected = crypto.createHmac('sha256', SECRET).update(parts[0] + '.' + parts[1]).digest('base64url');
    if (expected !== parts[2]) { return ''; }
    var claims;
    try { claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString()); } catch (e) { return ''; }
    var now = Math.floor(Date.now() / 1000);
    if (claims.exp !== undefined && now >= claims.exp) { return ''; }
    if (claims.nbf !== undefined && now < claims.nbf) { return ''; }
    return String(claims.sub);
}
export default { bucket, variant, responseHeader, jwtSub };
";

/// Write every function file into `dir`.
pub fn write_functions(dir: &Path, origin: SocketAddr) -> Result<(), BoxError> {
    for (name, code) in [
        ("rewrite.js", REWRITE_JS.to_owned()),
        ("response-header.js", RESPONSE_HEADER_JS.to_owned()),
        ("noop.js", NOOP_JS.to_owned()),
        ("jwt.js", JWT_JS.replace("SECRET_VALUE", JWT_SECRET)),
        (
            "edge-route.js",
            EDGE_ROUTE_JS.replace("PORT", &origin.port().to_string()),
        ),
        (
            "edge-origin-response.js",
            EDGE_ORIGIN_RESPONSE_JS.to_owned(),
        ),
        ("spin.js", SPIN_JS.to_owned()),
        ("bench.njs", NJS.replace("SECRET_VALUE", JWT_SECRET)),
    ] {
        std::fs::write(dir.join(name), code)?;
    }
    Ok(())
}

/// The nginx binary: on the PATH, or where Debian puts it (`/usr/sbin` is not on every PATH).
fn nginx_binary() -> &'static str {
    let on_path = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path { "nginx" } else { "/usr/sbin/nginx" }
}

/// The nginx the benchmark installs (`make bench`), or the reason it cannot run.
pub fn nginx_available() -> Result<(), String> {
    let ok = std::process::Command::new(nginx_binary())
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err("nginx is not installed (`make bench` installs it)".into());
    }
    if !Path::new(NJS_MODULE).exists() {
        return Err(format!(
            "the njs module {NJS_MODULE} is missing (`make bench` installs libnginx-mod-http-js)"
        ));
    }
    Ok(())
}

const NJS_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_js_module.so";

/// Start an nginx (one process, no master, so its pid is the server) with `http` as the body of
/// its `http {}` block, on `cpu`.
fn start_nginx(
    procs: &mut Procs,
    dir: &Path,
    name: &str,
    cpu: usize,
    http: &str,
) -> Result<(), BoxError> {
    let prefix = dir.join(name);
    // nginx appends to its logs: without a fresh prefix each run's access log is added to the
    // last one's, gigabytes after a few runs.
    match std::fs::remove_dir_all(&prefix) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::create_dir_all(&prefix)?;
    let p = prefix.display();
    let config = format!(
        "load_module {NJS_MODULE};\nworker_processes 1;\nmaster_process off;\ndaemon off;\n\
         pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         default_type text/plain;\n  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n{http}\n}}\n"
    );
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, config)?;
    procs.spawn(
        name,
        pinned(cpu, nginx_binary())
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(prefix.join("stderr.log"))?),
    )
}

/// The shared origin: nginx answering the fixed body, with what it was sent echoed in
/// response headers (so the identity check sees the request edits).
pub fn start_origin(procs: &mut Procs, dir: &Path) -> Result<SocketAddr, BoxError> {
    let addr = free_addr()?;
    let body = BODY.replace('\n', "\\n");
    start_nginx(
        procs,
        dir,
        "origin",
        1,
        &format!(
            "  access_log off;\n  server {{\n    listen {addr} backlog=4096;\n    location / {{\n\
             add_header X-Origin-Saw-Bucket $http_x_ab_bucket;\n\
             add_header X-Origin-Saw-Variant $http_x_ab_variant;\n\
             add_header X-Origin-Saw-Sub $http_x_jwt_sub;\n\
             return 200 \"{body}\";\n    }}\n  }}"
        ),
    )?;
    Ok(addr)
}

/// An nginx proxy to `origin` with upstream keep-alive and a buffered access log; `location`
/// adds to its `location /`, `http` to its `http {}`.
fn start_nginx_proxy(
    procs: &mut Procs,
    dir: &Path,
    name: &str,
    origin: SocketAddr,
    http: &str,
    location: &str,
) -> Result<SocketAddr, BoxError> {
    let addr = free_addr()?;
    let log = dir.join(name).join("access.log");
    start_nginx(
        procs,
        dir,
        name,
        0,
        &format!(
            "  access_log {} combined buffer=64k flush=100ms;\n{http}\n\
             upstream origin {{ server {origin}; keepalive 64; }}\n\
             server {{\n    listen {addr} backlog=4096;\n    location / {{\n{location}\n\
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             proxy_pass http://origin;\n    }}\n  }}",
            log.display()
        ),
    )?;
    Ok(addr)
}

/// nginx bare, nginx + njs rewrite, nginx + njs JWT.
pub fn start_nginx_rows(
    procs: &mut Procs,
    dir: &Path,
    origin: SocketAddr,
) -> Result<Vec<System>, BoxError> {
    let njs = format!("  js_import main from {};", dir.join("bench.njs").display());
    let bare = start_nginx_proxy(procs, dir, "nginx-bare", origin, "", "")?;
    let rewrite = start_nginx_proxy(
        procs,
        dir,
        "nginx-njs-rewrite",
        origin,
        &format!("{njs}\n  js_set $ab_bucket main.bucket;\n  js_set $ab_variant main.variant;"),
        "      proxy_set_header X-Ab-Bucket $ab_bucket;\n      proxy_set_header X-Ab-Variant $ab_variant;\n      js_header_filter main.responseHeader;",
    )?;
    let jwt = start_nginx_proxy(
        procs,
        dir,
        "nginx-njs-jwt",
        origin,
        &format!("{njs}\n  js_set $jwt_sub main.jwtSub;"),
        "      if ($jwt_sub = \"\") { return 401; }\n      proxy_set_header X-Jwt-Sub $jwt_sub;",
    )?;
    let row = |name, addr, work| System {
        name,
        addr,
        work,
        floor: "nginx-bare",
        verge_log: None,
    };
    Ok(vec![
        row("nginx-bare", bare, Work::None),
        row("nginx-njs-rewrite", rewrite, Work::Rewrite),
        row("nginx-njs-jwt", jwt, Work::Jwt),
    ])
}

/// The bare pingora floor (this executable in `bare` mode).
pub fn start_bare(procs: &mut Procs, dir: &Path, origin: SocketAddr) -> Result<System, BoxError> {
    let addr = free_addr()?;
    let me = std::env::current_exe()?;
    procs.spawn(
        "pingora-bare",
        pinned(0, &me.to_string_lossy())
            .arg("bare")
            .arg(addr.to_string())
            .arg(origin.to_string())
            .arg(dir.join("pingora-bare-access.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    Ok(System {
        name: "pingora-bare",
        addr,
        work: Work::None,
        floor: "pingora-bare",
        verge_log: None,
    })
}

/// Start one verge named `name` in front of `origin` with `behaviors` (TOML: the
/// `[[behaviors]]` tables and the functions they use). Access log on, to a file.
pub fn start_verge(
    procs: &mut Procs,
    dir: &Path,
    name: &str,
    origin: SocketAddr,
    behaviors: &str,
) -> Result<(SocketAddr, std::path::PathBuf), BoxError> {
    let [listen, admin] = free_addrs()?;
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"{listen}\"]\nthreads = 1\n[admin]\nlisten = \"{admin}\"\n\
             [logging]\naccess_log = true\n[origins.o]\nurl = \"http://{origin}\"\n{behaviors}"
        ),
    )?;
    let log = dir.join(format!("{name}-access.log"));
    procs.spawn(
        name,
        pinned(0, env!("CARGO_BIN_EXE_verge"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::null()),
    )?;
    Ok((listen, log))
}

/// The function definitions every verge row may use. The edge functions get one instance per
/// load connection: the rows measure throughput, not the concurrency limit (with the default 4
/// instances and 32 connections, a stall of the shared core let a few requests wait past the
/// bounded wait for an instance and answer 503 `LambdaLimitExceeded`, which fails the row).
fn functions(edge_instances: u32) -> String {
    format!(
        "[functions.rewrite]\ncode = \"rewrite.js\"\n\
         [functions.response_header]\ncode = \"response-header.js\"\n\
         [functions.noop]\ncode = \"noop.js\"\n\
         [functions.jwt]\ncode = \"jwt.js\"\n\
         [functions.route]\nruntime = \"lambda-edge\"\ncode = \"edge-route.js\"\n\
         instances = {edge_instances}\n\
         [functions.origin_response]\nruntime = \"lambda-edge\"\n\
         code = \"edge-origin-response.js\"\ninstances = {edge_instances}\n"
    )
}

/// The verge rows; edge functions get `edge_instances` instances each.
pub fn start_verge_rows(
    procs: &mut Procs,
    dir: &Path,
    origin: SocketAddr,
    edge_instances: u32,
) -> Result<Vec<System>, BoxError> {
    let functions = functions(edge_instances);
    let rows: [(&'static str, Work, &str); 7] = [
        ("verge-none", Work::None, ""),
        ("verge-noop", Work::None, "viewer_request = \"noop\""),
        (
            "verge-rewrite",
            Work::Rewrite,
            "viewer_request = \"rewrite\"\nviewer_response = \"response_header\"",
        ),
        // Issue #3's row: a viewer-request header rewrite alone (one call per request).
        (
            "verge-vr-rewrite",
            Work::RequestRewrite,
            "viewer_request = \"rewrite\"",
        ),
        ("verge-jwt", Work::Jwt, "viewer_request = \"jwt\""),
        // Issue #4's row: an origin-request routing function (Lambda@Edge) alone.
        ("verge-edge-route", Work::None, "origin_request = \"route\""),
        (
            "verge-4hooks",
            Work::FourHooks,
            "viewer_request = \"rewrite\"\norigin_request = \"route\"\n\
             origin_response = \"origin_response\"\nviewer_response = \"response_header\"",
        ),
    ];
    let mut out = Vec::new();
    for (name, work, hooks) in rows {
        let behaviors =
            format!("[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n{hooks}\n{functions}");
        let (addr, log) = start_verge(procs, dir, name, origin, &behaviors)?;
        out.push(System {
            name,
            addr,
            work,
            floor: "verge-none",
            verge_log: Some(log),
        });
    }
    Ok(out)
}
