//! `RawConfig` → [`Config`]: resolve names, parse durations and addresses, read the files the
//! configuration names, and collect every problem with its position rather than stopping at the
//! first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::AwsCredentials;
use crate::duration::parse_duration;
use crate::error::{ConfigError, ConfigErrors, Pos, SourceMap};
use crate::model::*;
use crate::pattern::PathPattern;
use crate::raw::*;

/// Defaults, documented in the README's configuration reference.
pub mod defaults {
    use std::time::Duration;

    /// `server.listen`
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// `admin.listen`
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9901";
    /// `server.shutdown_grace`
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// `server.client_timeout`
    pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
    /// `server.keepalive_timeout`
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `server.max_url_bytes` (CloudFront's URL limit)
    pub const MAX_URL_BYTES: usize = 8_192;
    /// `server.max_stuck_workers`
    pub const MAX_STUCK_WORKERS: usize = 8;
    /// `server.max_header_bytes` (CloudFront's request line + headers limit)
    pub const MAX_HEADER_BYTES: usize = 20_480;
    /// `origins.*.connect_timeout` (CloudFront's default connection timeout)
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// `origins.*.read_timeout` (CloudFront's default response timeout)
    pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// `origins.*.write_timeout`
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    /// `origins.*.idle_timeout` (CloudFront's default keep-alive timeout)
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
    /// `origins.*.dns_ttl`
    pub const DNS_TTL: Duration = Duration::from_secs(60);
    /// `functions.*.budget` (sub-millisecond, as CloudFront's)
    pub const FUNCTION_BUDGET: Duration = Duration::from_micros(900);
    /// The largest `functions.*.budget` (CloudFront's ~1 ms)
    pub const MAX_FUNCTION_BUDGET: Duration = Duration::from_millis(1);
    /// `functions.*.instances` (edge tier)
    pub const EDGE_INSTANCES: u32 = 4;
    /// The longest `functions.*.timeout` (Lambda@Edge's 30 s)
    pub const MAX_EDGE_TIMEOUT: Duration = Duration::from_secs(30);
    /// `functions.*.memory_mb` (edge tier): Lambda's default `MemorySize`, also its smallest
    pub const EDGE_MEMORY_MB: u32 = 128;
    /// The largest `functions.*.memory_mb`: Lambda's (origin hooks; 128 at the viewer hooks
    /// on AWS, which verge does not enforce per hook)
    pub const MAX_EDGE_MEMORY_MB: u32 = 10_240;
    /// `functions.*.fetch_timeout` (each `fetch`, within the invocation's own timeout)
    pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
    /// `functions.*.fetch_max_calls` (per invocation)
    pub const FETCH_MAX_CALLS: u32 = 10;
    /// `functions.*.fetch_max_bytes` (per response body)
    pub const FETCH_MAX_BYTES: u64 = 1024 * 1024;
    /// `origin_groups.*.failover_status`
    pub const FAILOVER_STATUS: [u16; 4] = [500, 502, 503, 504];
    /// The origin statuses CloudFront lets a custom error response replace
    /// (`custom_error_responses.*.error_code`).
    pub const CUSTOM_ERROR_CODES: [u16; 11] =
        [400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504];
    /// The longest `custom_error_responses.*.response_page_path` (CloudFront's 4,000 characters).
    pub const MAX_ERROR_PAGE_PATH: usize = 4000;
}

/// Collects errors while walking the raw configuration.
struct Checker<'a> {
    file: &'a Path,
    dir: PathBuf,
    map: &'a SourceMap,
    errors: Vec<ConfigError>,
    /// Every file the configuration names, read or not (a reload watches them all).
    named: Vec<PathBuf>,
}

impl Checker<'_> {
    fn pos<T>(&self, spanned: &Spanned<T>) -> Pos {
        self.map.pos(spanned.span().start)
    }

    fn error<T>(&mut self, at: &Spanned<T>, path: impl Into<String>, message: impl Into<String>) {
        let pos = self.pos(at);
        self.errors
            .push(ConfigError::new(self.file, pos, path, message));
    }

    fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        path: String,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.error(value, path, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(message) => {
                self.error(value, path, message);
                default
            }
        }
    }

    fn addr(&mut self, value: &Spanned<String>, path: String) -> Option<SocketAddr> {
        match value.get_ref().parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    value,
                    path,
                    format!(
                        "`{}` is not an IP:port address (e.g. \"127.0.0.1:8080\")",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.dir.join(p)
        }
    }

    /// Read a file the configuration names, reporting failure at the value.
    fn read(&mut self, value: &Spanned<String>, path: String) -> Option<(PathBuf, Vec<u8>)> {
        let file = self.path(value.get_ref());
        self.named.push(file.clone());
        match std::fs::read(&file) {
            Ok(bytes) => Some((file, bytes)),
            Err(e) => {
                self.error(value, path, format!("cannot read {}: {e}", file.display()));
                None
            }
        }
    }
}

/// Validate a parsed configuration.
pub fn validate(raw: RawConfig, file: &Path, map: &SourceMap) -> Result<Config, ConfigErrors> {
    validate_naming(raw, file, map).0
}

/// [`validate`], and every file the configuration names (itself and each file it tried to read,
/// whether or not it could; sorted), also when it is not valid.
pub fn validate_naming(
    raw: RawConfig,
    file: &Path,
    map: &SourceMap,
) -> (Result<Config, ConfigErrors>, Vec<PathBuf>) {
    let dir = file
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut c = Checker {
        file,
        dir,
        map,
        errors: Vec::new(),
        named: vec![file.to_owned()],
    };

    let server = server(&mut c, &raw.server);
    let admin = AdminConfig {
        listen: match &raw.admin.listen {
            Some(v) => c
                .addr(v, "admin.listen".into())
                .unwrap_or_else(default_admin),
            None => default_admin(),
        },
    };
    let logging = LoggingConfig {
        access_log: raw.logging.access_log.unwrap_or(true),
    };

    let mut origins = BTreeMap::new();
    for (name, o) in &raw.origins {
        if let Some(origin) = origin(&mut c, name, o) {
            origins.insert(name.clone(), Arc::new(origin));
        }
    }

    let mut origin_groups = BTreeMap::new();
    for (name, g) in &raw.origin_groups {
        let path = format!("origin_groups.{name}");
        if raw.origins.contains_key(name) {
            c.error(
                g,
                path.clone(),
                format!("`{name}` names both an origin and an origin group; behaviors could not tell them apart"),
            );
            continue;
        }
        let group = g.get_ref();
        let member = |c: &mut Checker, v: &Spanned<String>, field: &str| {
            let found = origins.get(v.get_ref()).cloned();
            if found.is_none() && !raw.origins.contains_key(v.get_ref()) {
                c.error(
                    v,
                    format!("{path}.{field}"),
                    format!("no origin is named `{}`", v.get_ref()),
                );
            }
            found
        };
        let primary = member(&mut c, &group.primary, "primary");
        let secondary = member(&mut c, &group.secondary, "secondary");
        let mut failover_status = Vec::new();
        for (i, s) in group.failover_status.iter().flatten().enumerate() {
            if (400..=599).contains(s.get_ref()) {
                failover_status.push(*s.get_ref());
            } else {
                c.error(
                    s,
                    format!("{path}.failover_status[{i}]"),
                    format!("{} is not a 4xx or 5xx status", s.get_ref()),
                );
            }
        }
        if group.failover_status.is_none() {
            failover_status = defaults::FAILOVER_STATUS.to_vec();
        }
        if let (Some(primary), Some(secondary)) = (primary, secondary) {
            origin_groups.insert(
                name.clone(),
                Arc::new(OriginGroup {
                    name: name.clone(),
                    primary,
                    secondary,
                    failover_status,
                }),
            );
        }
    }

    let mut kvs = BTreeMap::new();
    for (name, k) in &raw.kvs {
        let path = format!("kvs.{name}.file");
        let file_value = &k.get_ref().file;
        if let Some((file, _)) = c.read(file_value, path) {
            let pos = c.pos(file_value);
            kvs.insert(
                name.clone(),
                Arc::new(KvsDef {
                    name: name.clone(),
                    file,
                    pos,
                }),
            );
        }
    }

    let mut functions = BTreeMap::new();
    for (name, f) in &raw.functions {
        let known = Known {
            kvs: &kvs,
            raw_kvs: &raw.kvs,
            origins: &origins,
            raw_origins: &raw.origins,
        };
        if let Some(function) = function(&mut c, name, f.get_ref(), &known) {
            functions.insert(name.clone(), Arc::new(function));
        }
    }

    let behaviors = behaviors(&mut c, &raw, &origins, &origin_groups, &functions);
    let custom_error_responses = custom_error_responses(&mut c, &raw);

    let mut named = std::mem::take(&mut c.named);
    named.sort();
    named.dedup();
    let validated = if c.errors.is_empty() {
        Ok(Config {
            file: file.to_owned(),
            files: named.clone(),
            server,
            admin,
            logging,
            origins,
            origin_groups,
            behaviors,
            functions,
            kvs,
            custom_error_responses,
        })
    } else {
        c.errors.sort_by_key(|e| (e.pos.line, e.pos.col));
        Err(ConfigErrors(c.errors))
    };
    (validated, named)
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

fn server(c: &mut Checker, raw: &RawServer) -> ServerConfig {
    let listen = match &raw.listen {
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, v)| c.addr(v, format!("server.listen[{i}]")))
            .collect(),
        None => vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
    };
    let mut tls = Vec::new();
    for (i, t) in raw.tls.iter().enumerate() {
        let t = t.get_ref();
        let path = format!("server.tls[{i}]");
        let listen = c.addr(&t.listen, format!("{path}.listen"));
        let cert = c.read(&t.cert, format!("{path}.cert"));
        let key = c.read(&t.key, format!("{path}.key"));
        if let (Some(listen), Some((cert, _)), Some((key, _))) = (listen, cert, key) {
            tls.push(TlsListener {
                listen,
                cert,
                key,
                http2: t.http2.unwrap_or(true),
                pos: c.pos(&t.cert),
            });
        }
    }
    let threads = match &raw.threads {
        Some(t) if *t.get_ref() == 0 || *t.get_ref() > 1024 => {
            c.error(t, "server.threads", "must be between 1 and 1024");
            1
        }
        Some(t) => *t.get_ref(),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let limit = |c: &mut Checker, v: &Option<Spanned<usize>>, path: &str, default: usize| match v {
        Some(v) if *v.get_ref() < 256 || *v.get_ref() > 1 << 20 => {
            c.error(v, path, "must be between 256 and 1048576 bytes");
            default
        }
        Some(v) => *v.get_ref(),
        None => default,
    };
    ServerConfig {
        listen,
        tls,
        threads,
        shutdown_grace: c.duration(
            raw.shutdown_grace.as_ref(),
            "server.shutdown_grace".into(),
            defaults::SHUTDOWN_GRACE,
        ),
        client_timeout: c.duration(
            raw.client_timeout.as_ref(),
            "server.client_timeout".into(),
            defaults::CLIENT_TIMEOUT,
        ),
        keepalive_timeout: c.duration(
            raw.keepalive_timeout.as_ref(),
            "server.keepalive_timeout".into(),
            defaults::KEEPALIVE_TIMEOUT,
        ),
        max_url_bytes: limit(
            c,
            &raw.max_url_bytes,
            "server.max_url_bytes",
            defaults::MAX_URL_BYTES,
        ),
        max_header_bytes: limit(
            c,
            &raw.max_header_bytes,
            "server.max_header_bytes",
            defaults::MAX_HEADER_BYTES,
        ),
        max_stuck_workers: match &raw.max_stuck_workers {
            Some(v) if !(1..=1024).contains(v.get_ref()) => {
                c.error(v, "server.max_stuck_workers", "must be between 1 and 1024");
                defaults::MAX_STUCK_WORKERS
            }
            Some(v) => *v.get_ref(),
            None => defaults::MAX_STUCK_WORKERS,
        },
        batch_scheduling: raw.batch_scheduling.unwrap_or(true),
        preserve_header_case: raw.preserve_header_case.unwrap_or(false),
    }
}

fn origin(c: &mut Checker, name: &str, spanned: &Spanned<RawOrigin>) -> Option<Origin> {
    let raw = spanned.get_ref();
    let path = format!("origins.{name}");
    let url_path = format!("{path}.url");
    let uri: http::Uri = match raw.url.get_ref().parse() {
        Ok(uri) => uri,
        Err(e) => {
            c.error(&raw.url, url_path, format!("not a URL: {e}"));
            return None;
        }
    };
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        other => {
            c.error(
                &raw.url,
                url_path,
                format!(
                    "the scheme must be http or https, not {}",
                    other.unwrap_or("(none)")
                ),
            );
            return None;
        }
    };
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        c.error(&raw.url, url_path, "the URL has no host");
        return None;
    };
    if uri.query().is_some() {
        c.error(
            &raw.url,
            url_path,
            "an origin URL cannot have a query string",
        );
        return None;
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    let origin_path = uri.path().trim_end_matches('/').to_owned();

    let ca_pem = match &raw.ca_file {
        Some(v) => c
            .read(v, format!("{path}.ca_file"))
            .map(|(_, bytes)| Arc::new(bytes)),
        None => None,
    };
    if ca_pem.is_some()
        && scheme == Scheme::Http
        && let Some(v) = &raw.ca_file
    {
        c.error(
            v,
            format!("{path}.ca_file"),
            "ca_file needs an https origin",
        );
    }
    let sni = match &raw.sni {
        Some(v) if v.get_ref().is_empty() => {
            c.error(v, format!("{path}.sni"), "must not be empty");
            host.clone()
        }
        Some(v) => v.get_ref().clone(),
        None => host.clone(),
    };
    let timeout = |c: &mut Checker, field: &str, value: &Option<Spanned<String>>, default| {
        c.duration(value.as_ref(), format!("{path}.{field}"), default)
    };
    Some(Origin {
        name: name.to_owned(),
        scheme,
        port,
        path: origin_path,
        connect_timeout: timeout(
            c,
            "connect_timeout",
            &raw.connect_timeout,
            defaults::CONNECT_TIMEOUT,
        ),
        read_timeout: timeout(c, "read_timeout", &raw.read_timeout, defaults::READ_TIMEOUT),
        write_timeout: timeout(
            c,
            "write_timeout",
            &raw.write_timeout,
            defaults::WRITE_TIMEOUT,
        ),
        idle_timeout: timeout(c, "idle_timeout", &raw.idle_timeout, defaults::IDLE_TIMEOUT),
        dns_ttl: timeout(c, "dns_ttl", &raw.dns_ttl, defaults::DNS_TTL),
        verify_tls: raw.verify_tls.unwrap_or(true),
        ca_pem,
        sni,
        preserve_host: raw.preserve_host.unwrap_or(false),
        s3: raw
            .s3
            .as_ref()
            .and_then(|s3| s3_bucket(c, &path, &host, raw, s3)),
        host,
        pos: c.pos(spanned),
    })
}

/// An S3 origin's bucket settings, after checking its domain as CloudFront does (lower case, at
/// most [`S3Bucket::MAX_DOMAIN`] characters), the region's form (`eu-west-1`), its signing
/// behaviour, and its credentials ([`s3_credentials`]).
fn s3_bucket(
    c: &mut Checker,
    path: &str,
    host: &str,
    raw: &RawOrigin,
    s3: &Spanned<RawS3>,
) -> Option<S3Bucket> {
    let mut ok = true;
    if raw.preserve_host == Some(true) {
        // S3 answers by the Host it is sent, and CloudFront never forwards a viewer's to it.
        c.error(
            s3,
            format!("{path}.preserve_host"),
            "an S3 origin gets its own host, not the viewer's (S3 finds the bucket by it)",
        );
        ok = false;
    }
    let s3 = s3.get_ref();
    if !S3Bucket::domain_ok(host) {
        c.error(
            &raw.url,
            format!("{path}.url"),
            format!(
                "an S3 origin's domain `{host}` must be lower case and at most {} characters",
                S3Bucket::MAX_DOMAIN
            ),
        );
        ok = false;
    }
    let region = s3.region.get_ref();
    if !S3Bucket::region_ok(region) {
        c.error(
            &s3.region,
            format!("{path}.s3.region"),
            format!(
                "`{region}` is not a region name (lower-case letters, digits and `-`, as \
                 `eu-west-1`)"
            ),
        );
        ok = false;
    }
    if let (Some(profile), None) = (&s3.profile, &s3.credentials_file) {
        c.error(
            profile,
            format!("{path}.s3.profile"),
            "a profile names a section of credentials_file, which is not set",
        );
        ok = false;
    }
    let signing = match s3.signing.as_ref() {
        None => Signing::Always,
        Some(v) => match v.get_ref().as_str() {
            "always" => Signing::Always,
            "no-override" => Signing::NoOverride,
            "never" => Signing::Never,
            other => {
                c.error(
                    v,
                    format!("{path}.s3.signing"),
                    format!("`{other}` is not always, no-override or never"),
                );
                ok = false;
                Signing::Always
            }
        },
    };
    let has_source = s3.credentials_file.is_some()
        || s3
            .credentials_from_env
            .as_ref()
            .is_some_and(|v| *v.get_ref());
    if let (Some(v), false) = (&s3.signing, has_source) {
        c.error(
            v,
            format!("{path}.s3.signing"),
            "signing needs credentials: credentials_file or credentials_from_env",
        );
        ok = false;
    }
    let credentials = s3_credentials(c, path, s3, &mut ok);
    ok.then(|| S3Bucket {
        region: region.clone(),
        credentials,
        signing,
    })
}

/// An S3 origin's credentials: from `credentials_file` (its `profile`) or, with
/// `credentials_from_env`, from verge's environment; `None` without either, or when they
/// cannot be had (reported, and `ok` cleared).
fn s3_credentials(
    c: &mut Checker,
    path: &str,
    s3: &RawS3,
    ok: &mut bool,
) -> Option<Arc<AwsCredentials>> {
    let from_env = s3.credentials_from_env.as_ref().filter(|v| *v.get_ref());
    match (&s3.credentials_file, from_env) {
        (None, None) => None,
        (Some(_), Some(env)) => {
            c.error(
                env,
                format!("{path}.s3.credentials_from_env"),
                "credentials come from credentials_file or the environment, not both",
            );
            *ok = false;
            None
        }
        (None, Some(env)) => {
            match crate::aws_credentials::from_env(|name| std::env::var(name).ok()) {
                Ok(credentials) => Some(Arc::new(credentials)),
                Err(e) => {
                    c.error(
                        env,
                        format!("{path}.s3.credentials_from_env"),
                        format!("{e} in verge's environment"),
                    );
                    *ok = false;
                    None
                }
            }
        }
        (Some(file), None) => {
            let field = format!("{path}.s3.credentials_file");
            let Some((_, bytes)) = c.read(file, field.clone()) else {
                *ok = false;
                return None;
            };
            let profile = s3.profile.as_ref().map_or("default", |p| p.get_ref());
            let parsed = String::from_utf8(bytes)
                .map_err(|_| "not UTF-8 text".to_owned())
                .and_then(|text| crate::aws_credentials::parse_profile(&text, profile));
            match parsed {
                Ok(credentials) => Some(Arc::new(credentials)),
                Err(e) => {
                    c.error(file, field, e);
                    *ok = false;
                    None
                }
            }
        }
    }
}

/// A behavior's `cloudfront_headers`, by name (any case); a CloudFront header verge cannot add
/// (it has no geolocation database or device detection) or a name that is none is an error.
fn cloudfront_headers(c: &mut Checker, path: &str, b: &RawBehavior) -> Vec<CloudFrontHeader> {
    let mut out = Vec::new();
    for name in b.cloudfront_headers.iter().flatten() {
        let text = name.get_ref();
        let field = format!("{path}.cloudfront_headers");
        match CloudFrontHeader::ALL
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(text))
        {
            Some(h) if !out.contains(&h) => out.push(h),
            Some(_) => {}
            None => {
                let supported = CloudFrontHeader::ALL.map(CloudFrontHeader::name).join(", ");
                let why = if text.to_ascii_lowercase().starts_with("cloudfront-") {
                    "is one verge cannot add (it has no geolocation database, device detection \
                     or TLS fingerprints)"
                } else {
                    "is not a CloudFront header"
                };
                c.error(
                    name,
                    field,
                    format!("`{text}` {why}; verge adds {supported}"),
                );
            }
        }
    }
    out
}

/// What a function may refer to: the stores and origins built so far, and their raw tables
/// (a name whose table has errors is not reported again as unknown).
struct Known<'a> {
    kvs: &'a BTreeMap<String, Arc<KvsDef>>,
    raw_kvs: &'a BTreeMap<String, Spanned<RawKvs>>,
    origins: &'a BTreeMap<String, Arc<Origin>>,
    raw_origins: &'a BTreeMap<String, Spanned<RawOrigin>>,
}

/// `fetch`, `fetch_timeout`, `fetch_max_calls`, `fetch_max_bytes` of an edge function.
fn fetch_policy(c: &mut Checker, path: &str, raw: &RawFunction, known: &Known) -> FetchPolicy {
    let mut origins = Vec::new();
    for name in raw.fetch.iter().flat_map(|list| list.get_ref()) {
        match known.origins.get(name.get_ref()) {
            Some(o) => origins.push(o.clone()),
            None if known.raw_origins.contains_key(name.get_ref()) => {}
            None => c.error(
                name,
                format!("{path}.fetch"),
                format!(
                    "no origin is named `{}`; fetch lists origins by name",
                    name.get_ref()
                ),
            ),
        }
    }
    let timeout = c.duration(
        raw.fetch_timeout.as_ref(),
        format!("{path}.fetch_timeout"),
        defaults::FETCH_TIMEOUT,
    );
    if let Some(t) = &raw.fetch_timeout
        && (timeout.is_zero() || timeout > defaults::MAX_EDGE_TIMEOUT)
    {
        c.error(
            t,
            format!("{path}.fetch_timeout"),
            "must be more than 0 and at most 30s",
        );
    }
    let max_calls = match &raw.fetch_max_calls {
        Some(n) if !(1..=1000).contains(n.get_ref()) => {
            c.error(
                n,
                format!("{path}.fetch_max_calls"),
                "must be between 1 and 1000",
            );
            defaults::FETCH_MAX_CALLS
        }
        Some(n) => *n.get_ref(),
        None => defaults::FETCH_MAX_CALLS,
    };
    let max_bytes = match &raw.fetch_max_bytes {
        Some(n) if !(1..=64 * 1024 * 1024).contains(n.get_ref()) => {
            c.error(
                n,
                format!("{path}.fetch_max_bytes"),
                "must be between 1 and 67108864 (64 MiB)",
            );
            defaults::FETCH_MAX_BYTES
        }
        Some(n) => *n.get_ref(),
        None => defaults::FETCH_MAX_BYTES,
    };
    FetchPolicy {
        origins,
        timeout,
        max_calls,
        max_bytes: max_bytes as usize,
    }
}

fn function(c: &mut Checker, name: &str, raw: &RawFunction, known: &Known) -> Option<FunctionDef> {
    let (kvs, raw_kvs) = (known.kvs, known.raw_kvs);
    let path = format!("functions.{name}");
    let runtime = match &raw.runtime {
        Some(v) => match Runtime::parse(v.get_ref()) {
            Some(r) => r,
            None => {
                c.error(
                    v,
                    format!("{path}.runtime"),
                    format!(
                        "unknown runtime `{}`; use cloudfront-js-1.0, cloudfront-js-2.0 or lambda-edge",
                        v.get_ref()
                    ),
                );
                return None;
            }
        },
        None => Runtime::CloudfrontJs2,
    };
    let store = match &raw.kvs {
        Some(v) => {
            if !raw_kvs.contains_key(v.get_ref()) {
                c.error(
                    v,
                    format!("{path}.kvs"),
                    format!("no key-value store is named `{}`", v.get_ref()),
                );
            }
            kvs.get(v.get_ref()).cloned()
        }
        None => None,
    };
    let budget = c.duration(
        raw.budget.as_ref(),
        format!("{path}.budget"),
        defaults::FUNCTION_BUDGET,
    );
    if let Some(b) = &raw.budget
        && budget > defaults::MAX_FUNCTION_BUDGET
    {
        c.error(b, format!("{path}.budget"), "may be at most 1ms");
    }
    let edge = runtime == Runtime::LambdaEdge;
    // Settings of the other tier are mistakes, not silently ignored.
    if let (true, Some(b)) = (edge, &raw.budget) {
        c.error(
            b,
            format!("{path}.budget"),
            "lambda-edge functions have a wall-clock `timeout`, not a CPU `budget`",
        );
    }
    const EDGE_ONLY: &str =
        "applies only to runtime lambda-edge (CloudFront Functions have a CPU `budget`)";
    if let (false, Some(t)) = (edge, &raw.timeout) {
        c.error(t, format!("{path}.timeout"), EDGE_ONLY);
    }
    if let (false, Some(i)) = (edge, &raw.instances) {
        c.error(i, format!("{path}.instances"), EDGE_ONLY);
    }
    if let (false, Some(m)) = (edge, &raw.memory_mb) {
        c.error(m, format!("{path}.memory_mb"), EDGE_ONLY);
    }
    if let (true, Some(t)) = (edge, &raw.throttle) {
        c.error(
            t,
            format!("{path}.throttle"),
            "applies only to CloudFront Functions (lambda-edge has a timeout and instances)",
        );
    }
    if let (false, Some(f)) = (edge, &raw.fetch) {
        c.error(f, format!("{path}.fetch"), EDGE_ONLY);
    }
    let fetch = fetch_policy(c, &path, raw, known);
    let timeout = raw.timeout.as_ref().map(|t| {
        let d = c.duration(
            Some(t),
            format!("{path}.timeout"),
            defaults::MAX_EDGE_TIMEOUT,
        );
        if d > defaults::MAX_EDGE_TIMEOUT {
            c.error(
                t,
                format!("{path}.timeout"),
                "may be at most 30s (Lambda@Edge's limit)",
            );
        }
        d
    });
    let instances = match &raw.instances {
        Some(i) if !(1..=1024).contains(i.get_ref()) => {
            c.error(i, format!("{path}.instances"), "must be between 1 and 1024");
            defaults::EDGE_INSTANCES
        }
        Some(i) => *i.get_ref(),
        None => defaults::EDGE_INSTANCES,
    };
    let memory_mb = match &raw.memory_mb {
        Some(m)
            if !(defaults::EDGE_MEMORY_MB..=defaults::MAX_EDGE_MEMORY_MB).contains(m.get_ref()) =>
        {
            c.error(
                m,
                format!("{path}.memory_mb"),
                format!(
                    "must be between {} and {} (Lambda's MemorySize)",
                    defaults::EDGE_MEMORY_MB,
                    defaults::MAX_EDGE_MEMORY_MB
                ),
            );
            defaults::EDGE_MEMORY_MB
        }
        Some(m) => *m.get_ref(),
        None => defaults::EDGE_MEMORY_MB,
    };
    let (code_path, bytes) = c.read(&raw.code, format!("{path}.code"))?;
    let code = match String::from_utf8(bytes) {
        Ok(code) => code,
        Err(_) => {
            c.error(
                &raw.code,
                format!("{path}.code"),
                format!("{} is not UTF-8 text", code_path.display()),
            );
            return None;
        }
    };
    Some(FunctionDef {
        name: name.to_owned(),
        runtime,
        code_path,
        code: Arc::from(code),
        kvs: store,
        budget,
        enforce_size_limit: raw.enforce_size_limit.unwrap_or(true),
        fail_open: raw.fail_open.unwrap_or(false),
        throttle: raw.throttle.as_ref().is_none_or(|t| *t.get_ref()),
        timeout,
        instances: instances as usize,
        memory_mb,
        fetch,
        pos: c.pos(&raw.code),
    })
}

fn behaviors(
    c: &mut Checker,
    raw: &RawConfig,
    origins: &BTreeMap<String, Arc<Origin>>,
    groups: &BTreeMap<String, Arc<OriginGroup>>,
    functions: &BTreeMap<String, Arc<FunctionDef>>,
) -> Vec<Behavior> {
    let mut out = Vec::new();
    for (index, spanned) in raw.behaviors.iter().enumerate() {
        let b = spanned.get_ref();
        let path = format!("behaviors[{index}]");
        let pattern = match PathPattern::parse(b.path_pattern.get_ref()) {
            Ok(p) => Some(p),
            Err(message) => {
                c.error(&b.path_pattern, format!("{path}.path_pattern"), message);
                None
            }
        };
        let name = b.origin.get_ref();
        let target = if let Some(o) = origins.get(name) {
            Some(Target::Origin(o.clone()))
        } else if let Some(g) = groups.get(name) {
            Some(Target::Group(g.clone()))
        } else {
            if !raw.origins.contains_key(name) && !raw.origin_groups.contains_key(name) {
                c.error(
                    &b.origin,
                    format!("{path}.origin"),
                    format!("no origin or origin group is named `{name}`"),
                );
            }
            None
        };
        let mut hooks: [Option<Arc<FunctionDef>>; 4] = Default::default();
        let slots = [
            (Hook::ViewerRequest, &b.viewer_request),
            (Hook::OriginRequest, &b.origin_request),
            (Hook::OriginResponse, &b.origin_response),
            (Hook::ViewerResponse, &b.viewer_response),
        ];
        let mut include_body = [false; 4];
        for (hook, slot) in slots {
            let Some(slot) = slot else { continue };
            let fname = &slot.get_ref().function;
            let field = format!("{path}.{}", hook.key());
            match functions.get(fname) {
                Some(f) if !f.runtime.allowed_at(hook) => c.error(
                    slot,
                    field.clone(),
                    format!(
                        "`{fname}` is a {} function; CloudFront Functions run only at viewer_request and viewer_response",
                        f.runtime.name()
                    ),
                ),
                Some(f) => hooks[hook as usize] = Some(f.clone()),
                None if raw.functions.contains_key(fname) => {}
                None => c.error(slot, field.clone(), format!("no function is named `{fname}`")),
            }
            if slot.get_ref().include_body != Some(true) {
                continue;
            }
            let field = format!("{field}.include_body");
            if !matches!(hook, Hook::ViewerRequest | Hook::OriginRequest) {
                c.error(
                    slot,
                    field,
                    "include_body applies to viewer_request and origin_request only (as on CloudFront)",
                );
            } else if functions
                .get(fname)
                .is_some_and(|f| f.runtime != Runtime::LambdaEdge)
            {
                c.error(
                    slot,
                    field,
                    format!("`{fname}` is a CloudFront Function, which cannot read the request body; include_body needs a lambda-edge function"),
                );
            } else {
                include_body[hook as usize] = true;
            }
        }
        if let (Some(path_pattern), Some(target)) = (pattern, target) {
            out.push(Behavior {
                index,
                path_pattern,
                target,
                hooks,
                viewer_response_on_error: b.viewer_response_on_error.unwrap_or(false),
                include_body,
                cloudfront_headers: cloudfront_headers(c, &path, b),
            });
        }
    }
    match raw.behaviors.last() {
        None => c.errors.push(ConfigError::new(
            c.file,
            Pos::START,
            "behaviors",
            "at least one behavior is needed; the last one must have path_pattern = \"*\"",
        )),
        Some(last)
            if last
                .get_ref()
                .path_pattern
                .get_ref()
                .chars()
                .any(|ch| ch != '*') =>
        {
            c.error(
                &last.get_ref().path_pattern,
                format!("behaviors[{}].path_pattern", raw.behaviors.len() - 1),
                "the last behavior is the default and must have path_pattern = \"*\"",
            )
        }
        Some(_) => {}
    }
    out
}

/// `[[custom_error_responses]]`: CloudFront's codes, a page path CloudFront would take, and one
/// entry per error code.
fn custom_error_responses(c: &mut Checker<'_>, raw: &RawConfig) -> Vec<Arc<CustomErrorResponse>> {
    let mut out: Vec<Arc<CustomErrorResponse>> = Vec::new();
    for (i, entry) in raw.custom_error_responses.iter().enumerate() {
        let path = format!("custom_error_responses[{i}]");
        let e = entry.get_ref();
        let mut ok = true;
        let error_code = *e.error_code.get_ref();
        if !defaults::CUSTOM_ERROR_CODES.contains(&error_code) {
            c.error(
                &e.error_code,
                format!("{path}.error_code"),
                format!(
                    "{error_code} is not a status CloudFront customizes (one of {:?})",
                    defaults::CUSTOM_ERROR_CODES
                ),
            );
            ok = false;
        } else if out.iter().any(|o| o.error_code == error_code) {
            c.error(
                &e.error_code,
                format!("{path}.error_code"),
                format!("{error_code} already has a custom error response"),
            );
            ok = false;
        }
        let response_code = *e.response_code.get_ref();
        if response_code != 200 && !defaults::CUSTOM_ERROR_CODES.contains(&response_code) {
            c.error(
                &e.response_code,
                format!("{path}.response_code"),
                format!(
                    "{response_code} is not a status CloudFront answers with (200 or one of {:?})",
                    defaults::CUSTOM_ERROR_CODES
                ),
            );
            ok = false;
        }
        let page = e.response_page_path.get_ref();
        let page_error = if !page.starts_with('/') {
            Some("must start with `/`".to_owned())
        } else if page.len() > defaults::MAX_ERROR_PAGE_PATH {
            Some(format!(
                "{} characters; CloudFront allows {}",
                page.len(),
                defaults::MAX_ERROR_PAGE_PATH
            ))
        } else if page.contains(['?', '#']) || page.parse::<http::uri::PathAndQuery>().is_err() {
            Some("must be a path alone, in characters a URL may hold (no query)".to_owned())
        } else {
            None
        };
        if let Some(why) = page_error {
            c.error(
                &e.response_page_path,
                format!("{path}.response_page_path"),
                format!("`{page}` {why}"),
            );
            ok = false;
        }
        if ok {
            out.push(Arc::new(CustomErrorResponse {
                error_code,
                response_page_path: page.clone(),
                response_code,
            }));
        }
    }
    out
}
