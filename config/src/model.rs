//! The validated, typed configuration. Everything here has been checked: names resolve, durations
//! parse, files referenced by the configuration were readable when it was loaded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Pos;
use crate::pattern::PathPattern;

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from; relative paths in it are relative to its folder.
    pub file: PathBuf,
    /// `file` and every file it names (certificates, CA files, function code, key-value
    /// stores), sorted: what a change to reloads it. Read through [`Config::watched_files`].
    pub(crate) files: Vec<PathBuf>,
    /// Listeners and server-wide settings.
    pub server: ServerConfig,
    /// The admin listener (metrics, health).
    pub admin: AdminConfig,
    /// Access logging.
    pub logging: LoggingConfig,
    /// Named origins.
    pub origins: BTreeMap<String, Arc<Origin>>,
    /// Named origin groups (failover pairs).
    pub origin_groups: BTreeMap<String, Arc<OriginGroup>>,
    /// Behaviors in match order; the last one is the default (`*`).
    pub behaviors: Vec<Behavior>,
    /// Named functions.
    pub functions: BTreeMap<String, Arc<FunctionDef>>,
    /// Named key-value stores.
    pub kvs: BTreeMap<String, Arc<KvsDef>>,
    /// CloudFront's custom error responses, at most one per error code.
    pub custom_error_responses: Vec<Arc<CustomErrorResponse>>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Plain HTTP listeners. Restart-only.
    pub listen: Vec<SocketAddr>,
    /// TLS listeners. Addresses are restart-only; certificates reload.
    pub tls: Vec<TlsListener>,
    /// Proxy worker threads. Restart-only.
    pub threads: usize,
    /// How long a graceful shutdown waits for requests in flight. Restart-only.
    pub shutdown_grace: Duration,
    /// Read and write timeout on viewer connections.
    pub client_timeout: Duration,
    /// How long an idle viewer keep-alive connection is kept.
    pub keepalive_timeout: Duration,
    /// Longest URL (path and query) accepted; longer gets 414.
    pub max_url_bytes: usize,
    /// Largest request line plus headers accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Fast-tier workers stuck in a native call past the hard ceiling (retired, still running)
    /// plus edge instances parked at their memory ceiling, that together make verge drain and
    /// exit non-zero for its supervisor to restart it.
    pub max_stuck_workers: usize,
    /// Proxy threads run with Linux's `SCHED_BATCH` policy: a proxy thread woken (by the
    /// network, or by a function's reply) does not preempt the thread running on its core,
    /// typically a fast worker part way through a queue of invocations.
    pub batch_scheduling: bool,
    /// HTTP/1 header names keep the case they arrived in on their way on (pingora's case map).
    /// Off, names are written as pingora writes them without one (a few standard names
    /// title-cased, the rest lower case), which saves a second map's upkeep on every header
    /// verge or a function adds.
    pub preserve_header_case: bool,
}

/// One `[[server.tls]]` listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    /// Address to listen on. Restart-only.
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Offer HTTP/2 by ALPN.
    pub http2: bool,
    /// Where `cert` was written, for errors found when the certificate is parsed.
    pub pos: Pos,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Where `GET /metrics` and `GET /healthz` are served. Restart-only.
    pub listen: SocketAddr,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    /// One JSON line per request. Restart-only.
    pub access_log: bool,
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP/1.1.
    Http,
    /// HTTP/1.1 over TLS.
    Https,
}

/// What makes an origin an S3 bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Bucket {
    /// The bucket's region (`request.origin.s3.region`, and the signature's scope).
    pub region: String,
    /// The credentials every request to it is signed with (AWS Signature Version 4, as
    /// CloudFront's origin access control signs); `None` sends requests unsigned.
    pub credentials: Option<Arc<crate::AwsCredentials>>,
    /// Which requests the credentials sign (origin access control's `signingBehavior`).
    pub signing: Signing,
}

/// Which requests to a bucket with credentials are signed, as origin access control's
/// `signingBehavior` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Every request, the viewer's `authorization` replaced.
    Always,
    /// Those without an `authorization` of the viewer's, which goes on as it came.
    NoOverride,
    /// None.
    Never,
}

impl S3Bucket {
    /// The credentials to sign a request with, given whether it carries an `authorization`.
    pub fn signer(&self, has_authorization: bool) -> Option<&crate::AwsCredentials> {
        let sign = match self.signing {
            Signing::Always => true,
            Signing::NoOverride => !has_authorization,
            Signing::Never => false,
        };
        self.credentials.as_deref().filter(|_| sign)
    }

    /// The longest bucket domain CloudFront takes (contract §2.5, `request.origin.s3`).
    pub const MAX_DOMAIN: usize = 128;

    /// Whether `domain` can name an S3 origin, as CloudFront checks it: lower case, at most
    /// [`Self::MAX_DOMAIN`] characters.
    pub fn domain_ok(domain: &str) -> bool {
        domain.len() <= Self::MAX_DOMAIN && !domain.bytes().any(|b| b.is_ascii_uppercase())
    }

    /// Whether `region` has a region name's form, as `eu-west-1`.
    pub fn region_ok(region: &str) -> bool {
        !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }
}

/// A named origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// Its name in the configuration.
    pub name: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// Origin path prepended to every request path (no trailing slash; empty for none).
    pub path: String,
    /// TCP connect (and TLS handshake) timeout.
    pub connect_timeout: Duration,
    /// Longest wait for any read from the origin, including the response header.
    pub read_timeout: Duration,
    /// Longest wait for any write to the origin.
    pub write_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    /// How long a DNS answer is reused.
    pub dns_ttl: Duration,
    /// Verify the origin's certificate (https only). On by default.
    pub verify_tls: bool,
    /// Extra CA certificates (PEM) trusted for this origin instead of the system roots.
    pub ca_pem: Option<Arc<Vec<u8>>>,
    /// TLS server name; defaults to `host`.
    pub sni: String,
    /// Forward the viewer's `Host` header instead of the origin's host.
    pub preserve_host: bool,
    /// Set for an S3 bucket: Lambda@Edge events show it as `request.origin.s3` instead of
    /// `request.origin.custom`.
    pub s3: Option<S3Bucket>,
    /// Where the origin was declared, for errors found later (bad CA file, …).
    pub pos: Pos,
}

impl Origin {
    /// `host[:port]` as it goes into a `Host` header (port omitted when it is the default).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `[[custom_error_responses]]`: what the viewer gets instead of an origin's error answer, as
/// CloudFront's custom error responses: the page at `response_page_path`, fetched through the
/// behavior that path matches, with status `response_code`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomErrorResponse {
    /// The origin status it replaces.
    pub error_code: u16,
    /// The page the viewer gets instead (a path, `/` first, no query).
    pub response_page_path: String,
    /// The status the viewer gets with it.
    pub response_code: u16,
}

/// A named origin group: primary, and a secondary tried on failure.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginGroup {
    /// Its name in the configuration.
    pub name: String,
    /// The origin tried first.
    pub primary: Arc<Origin>,
    /// The origin tried when the primary fails.
    pub secondary: Arc<Origin>,
    /// Primary response statuses that trigger failover.
    pub failover_status: Vec<u16>,
}

/// What a behavior sends requests to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A single origin.
    Origin(Arc<Origin>),
    /// An origin group with failover.
    Group(Arc<OriginGroup>),
}

impl Target {
    /// The configured name of the origin or group.
    pub fn name(&self) -> &str {
        match self {
            Target::Origin(o) => &o.name,
            Target::Group(g) => &g.name,
        }
    }
}

/// The four hooks of a request's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// After the viewer's request is parsed, before origin selection.
    ViewerRequest,
    /// Before the request goes to the origin (only when the origin is contacted).
    OriginRequest,
    /// After the origin's response header arrives.
    OriginResponse,
    /// Before the response goes to the viewer.
    ViewerResponse,
}

impl Hook {
    /// All hooks, in request order.
    pub const ALL: [Hook; 4] = [
        Hook::ViewerRequest,
        Hook::OriginRequest,
        Hook::OriginResponse,
        Hook::ViewerResponse,
    ];

    /// CloudFront's `eventType`: the configuration key with a dash.
    pub fn event_type(self) -> &'static str {
        match self {
            Hook::ViewerRequest => "viewer-request",
            Hook::OriginRequest => "origin-request",
            Hook::OriginResponse => "origin-response",
            Hook::ViewerResponse => "viewer-response",
        }
    }

    /// The configuration key.
    pub fn key(self) -> &'static str {
        match self {
            Hook::ViewerRequest => "viewer_request",
            Hook::OriginRequest => "origin_request",
            Hook::OriginResponse => "origin_response",
            Hook::ViewerResponse => "viewer_response",
        }
    }
}

/// A path pattern and what to do with the requests it matches.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// Position in the behavior list (0-based), also its metrics label.
    pub index: usize,
    /// Which request paths it takes.
    pub path_pattern: PathPattern,
    /// Where it sends them.
    pub target: Target,
    /// The function attached at each hook, indexed by `Hook as usize`.
    pub hooks: [Option<Arc<FunctionDef>>; 4],
    /// Run the viewer-response function on origin answers ≥ 400 too (CloudFront does not).
    pub viewer_response_on_error: bool,
    /// Hooks whose function gets the request body (`include_body`; viewer-request and
    /// origin-request only), indexed by `Hook as usize`.
    pub include_body: [bool; 4],
    /// The CloudFront headers verge adds to this behavior's requests after viewer-request, as
    /// an origin request policy that includes them does.
    pub cloudfront_headers: Vec<CloudFrontHeader>,
}

/// A header CloudFront adds about the viewer when a policy asks for it, that verge can add too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudFrontHeader {
    /// `CloudFront-Forwarded-Proto`: `http` or `https`, how the viewer connected.
    ForwardedProto,
    /// `CloudFront-Viewer-Address`: the viewer's address and port, `ip:port`.
    ViewerAddress,
    /// `CloudFront-Viewer-Http-Version`: `1.0`, `1.1` or `2.0`.
    ViewerHttpVersion,
}

impl CloudFrontHeader {
    /// Every header verge adds, in the order it adds them.
    pub const ALL: [CloudFrontHeader; 3] = [
        CloudFrontHeader::ForwardedProto,
        CloudFrontHeader::ViewerAddress,
        CloudFrontHeader::ViewerHttpVersion,
    ];

    /// The header's name as it goes on the wire (lower case, as verge writes names).
    pub fn lower_name(self) -> &'static str {
        match self {
            CloudFrontHeader::ForwardedProto => "cloudfront-forwarded-proto",
            CloudFrontHeader::ViewerAddress => "cloudfront-viewer-address",
            CloudFrontHeader::ViewerHttpVersion => "cloudfront-viewer-http-version",
        }
    }

    /// The header's name as CloudFront writes it.
    pub fn name(self) -> &'static str {
        match self {
            CloudFrontHeader::ForwardedProto => "CloudFront-Forwarded-Proto",
            CloudFrontHeader::ViewerAddress => "CloudFront-Viewer-Address",
            CloudFrontHeader::ViewerHttpVersion => "CloudFront-Viewer-Http-Version",
        }
    }
}

impl Behavior {
    /// The function attached at a hook.
    pub fn function(&self, hook: Hook) -> Option<&Arc<FunctionDef>> {
        self.hooks[hook as usize].as_ref()
    }

    /// Whether the function at `hook` gets the request body.
    pub fn includes_body(&self, hook: Hook) -> bool {
        self.include_body[hook as usize]
    }
}

/// A function runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// CloudFront Functions, JavaScript runtime 1.0 (ES5.1, fast tier).
    CloudfrontJs1,
    /// CloudFront Functions, JavaScript runtime 2.0 (fast tier).
    CloudfrontJs2,
    /// Lambda@Edge handlers (edge tier).
    LambdaEdge,
}

impl Runtime {
    /// Parse the configuration name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cloudfront-js-1.0" => Some(Runtime::CloudfrontJs1),
            "cloudfront-js-2.0" => Some(Runtime::CloudfrontJs2),
            "lambda-edge" => Some(Runtime::LambdaEdge),
            _ => None,
        }
    }

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::CloudfrontJs1 => "cloudfront-js-1.0",
            Runtime::CloudfrontJs2 => "cloudfront-js-2.0",
            Runtime::LambdaEdge => "lambda-edge",
        }
    }

    /// CloudFront Functions run only at the viewer hooks.
    pub fn allowed_at(self, hook: Hook) -> bool {
        match self {
            Runtime::LambdaEdge => true,
            Runtime::CloudfrontJs1 | Runtime::CloudfrontJs2 => {
                matches!(hook, Hook::ViewerRequest | Hook::ViewerResponse)
            }
        }
    }
}

/// A named function with its source loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    /// Its name in the configuration.
    pub name: String,
    /// Its runtime.
    pub runtime: Runtime,
    /// Where the code was read from.
    pub code_path: PathBuf,
    /// The source text.
    pub code: Arc<str>,
    /// The associated key-value store.
    pub kvs: Option<Arc<KvsDef>>,
    /// CPU time per invocation (fast tier).
    pub budget: Duration,
    /// Refuse fast-tier code over CloudFront's 10 KB (on by default).
    pub enforce_size_limit: bool,
    /// When the function is over budget, throttled or has no capacity: forward the request or
    /// response unmodified instead of answering 503 (off by default: fail closed).
    pub fail_open: bool,
    /// Throttle a function that keeps overrunning its budget (fast tier; on by default). Off,
    /// every invocation runs and is stopped at its budget.
    pub throttle: bool,
    /// Wall-clock limit per invocation (edge tier); `None` takes the hook's default.
    pub timeout: Option<Duration>,
    /// Instances (edge tier): each runs one invocation at a time on its own thread, so this
    /// is the function's concurrency limit.
    pub instances: usize,
    /// Memory an invocation may take on top of what its instance held when it began, in MB
    /// (edge tier; Lambda's `MemorySize`, 128 by default).
    pub memory_mb: u32,
    /// What the function may `fetch` (edge tier).
    pub fetch: FetchPolicy,
    /// Where `code` was written, for errors the JS loader finds.
    pub pos: Pos,
}

/// What an edge function may `fetch`: only the listed origins (a URL's scheme, host and port
/// must be one of theirs), each call within `timeout` (and the invocation's own), at most
/// `max_calls` calls per invocation and `max_bytes` per response body.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPolicy {
    /// The allow-list (`fetch = ["origin", …]`); empty: `fetch` refuses every URL.
    pub origins: Vec<Arc<Origin>>,
    /// `fetch_timeout`.
    pub timeout: Duration,
    /// `fetch_max_calls`.
    pub max_calls: u32,
    /// `fetch_max_bytes`.
    pub max_bytes: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        use crate::validate::defaults;
        FetchPolicy {
            origins: Vec::new(),
            timeout: defaults::FETCH_TIMEOUT,
            max_calls: defaults::FETCH_MAX_CALLS,
            max_bytes: defaults::FETCH_MAX_BYTES as usize,
        }
    }
}

impl FunctionDef {
    /// A function from source text rather than a configuration file (`verge test-function`,
    /// tests and benches), with every setting at its configuration default: a 1 ms budget
    /// (the largest a configuration allows), the size limit on, fail closed, throttled, the
    /// hook's default timeout, one instance, 128 MB, no `fetch`.
    pub fn inline(name: &str, runtime: Runtime, code: &str) -> Self {
        FunctionDef {
            name: name.to_owned(),
            runtime,
            code_path: format!("{name}.js").into(),
            code: Arc::from(code),
            kvs: None,
            budget: crate::validate::defaults::MAX_FUNCTION_BUDGET,
            enforce_size_limit: true,
            fail_open: false,
            throttle: true,
            timeout: None,
            instances: 1,
            memory_mb: crate::validate::defaults::EDGE_MEMORY_MB,
            fetch: FetchPolicy::default(),
            pos: Pos::START,
        }
    }

    /// The edge tier's wall-clock limit at `hook`: the configured one, else Lambda@Edge's
    /// classic defaults (5 s at the viewer hooks, 30 s at the origin hooks).
    pub fn timeout_at(&self, hook: Hook) -> Duration {
        self.timeout.unwrap_or(match hook {
            Hook::ViewerRequest | Hook::ViewerResponse => Duration::from_secs(5),
            Hook::OriginRequest | Hook::OriginResponse => Duration::from_secs(30),
        })
    }
}

/// A named key-value store.
#[derive(Debug, Clone, PartialEq)]
pub struct KvsDef {
    /// Its name in the configuration.
    pub name: String,
    /// The CloudFront import file it is loaded from.
    pub file: PathBuf,
    /// Where `file` was written, for errors the loader finds.
    pub pos: Pos,
}

impl Config {
    /// The custom error response for an origin's `status`, if one is configured.
    pub fn custom_error_response(&self, status: u16) -> Option<&Arc<CustomErrorResponse>> {
        self.custom_error_responses
            .iter()
            .find(|c| c.error_code == status)
    }

    /// Every file this configuration depends on, for change detection ([`Config::files`]).
    pub fn watched_files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The settings that only take effect on a restart and differ between `self` (running) and
    /// `next` (just loaded), as field paths.
    pub fn restart_only_changes(&self, next: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        let (a, b) = (&self.server, &next.server);
        if a.listen != b.listen {
            changed.push("server.listen".to_owned());
        }
        let tls_addrs = |s: &ServerConfig| {
            s.tls
                .iter()
                .map(|t| (t.listen, t.http2))
                .collect::<Vec<_>>()
        };
        if tls_addrs(a) != tls_addrs(b) {
            changed.push("server.tls[].listen".to_owned());
        }
        if a.threads != b.threads {
            changed.push("server.threads".to_owned());
        }
        if a.shutdown_grace != b.shutdown_grace {
            changed.push("server.shutdown_grace".to_owned());
        }
        if self.admin != next.admin {
            changed.push("admin.listen".to_owned());
        }
        if self.logging != next.logging {
            changed.push("logging.access_log".to_owned());
        }
        changed
    }
}
