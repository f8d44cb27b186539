//! The configuration exactly as written: serde structs that reject unknown keys and keep the
//! source spans that [`crate::validate`] needs to point at a bad value.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub origins: BTreeMap<String, Spanned<RawOrigin>>,
    #[serde(default)]
    pub origin_groups: BTreeMap<String, Spanned<RawOriginGroup>>,
    #[serde(default)]
    pub behaviors: Vec<Spanned<RawBehavior>>,
    #[serde(default)]
    pub functions: BTreeMap<String, Spanned<RawFunction>>,
    #[serde(default)]
    pub kvs: BTreeMap<String, Spanned<RawKvs>>,
    #[serde(default)]
    pub custom_error_responses: Vec<Spanned<RawCustomErrorResponse>>,
}

/// `[server]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub tls: Vec<Spanned<RawTls>>,
    pub threads: Option<Spanned<usize>>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub client_timeout: Option<Spanned<String>>,
    pub keepalive_timeout: Option<Spanned<String>>,
    pub max_url_bytes: Option<Spanned<usize>>,
    pub max_header_bytes: Option<Spanned<usize>>,
    pub max_stuck_workers: Option<Spanned<usize>>,
    pub batch_scheduling: Option<bool>,
    pub preserve_header_case: Option<bool>,
}

/// `[[server.tls]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: Spanned<String>,
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    pub http2: Option<bool>,
}

/// `[admin]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
}

/// `[logging]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub access_log: Option<bool>,
}

/// `[origins.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    pub url: Spanned<String>,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub write_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub dns_ttl: Option<Spanned<String>>,
    pub verify_tls: Option<bool>,
    pub ca_file: Option<Spanned<String>>,
    pub sni: Option<Spanned<String>>,
    pub preserve_host: Option<bool>,
    pub s3: Option<Spanned<RawS3>>,
}

/// `[origins.NAME.s3]`: the origin is an S3 bucket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub region: Spanned<String>,
    pub credentials_file: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub credentials_from_env: Option<Spanned<bool>>,
    pub signing: Option<Spanned<String>>,
}

/// `[origin_groups.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOriginGroup {
    pub primary: Spanned<String>,
    pub secondary: Spanned<String>,
    pub failover_status: Option<Vec<Spanned<u16>>>,
}

/// `[[custom_error_responses]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomErrorResponse {
    pub error_code: Spanned<u16>,
    pub response_page_path: Spanned<String>,
    pub response_code: Spanned<u16>,
}

/// `[[behaviors]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBehavior {
    pub path_pattern: Spanned<String>,
    pub origin: Spanned<String>,
    pub viewer_request: Option<Spanned<RawHook>>,
    pub origin_request: Option<Spanned<RawHook>>,
    pub origin_response: Option<Spanned<RawHook>>,
    pub viewer_response: Option<Spanned<RawHook>>,
    pub viewer_response_on_error: Option<bool>,
    pub cloudfront_headers: Option<Vec<Spanned<String>>>,
}

/// A behavior's hook slot: a function name, or `{ function = "NAME", include_body = true }`.
#[derive(Debug)]
pub struct RawHook {
    pub function: String,
    pub include_body: Option<bool>,
}

/// The table form of [`RawHook`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHookTable {
    function: String,
    include_body: Option<bool>,
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HookVisitor;
        impl<'de> serde::de::Visitor<'de> for HookVisitor {
            type Value = RawHook;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a function name or a table { function = \"NAME\", include_body = true }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<RawHook, E> {
                Ok(RawHook {
                    function: name.to_owned(),
                    include_body: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawHook, A::Error> {
                let table =
                    RawHookTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawHook {
                    function: table.function,
                    include_body: table.include_body,
                })
            }
        }
        deserializer.deserialize_any(HookVisitor)
    }
}

/// `[functions.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    pub runtime: Option<Spanned<String>>,
    pub code: Spanned<String>,
    pub kvs: Option<Spanned<String>>,
    pub budget: Option<Spanned<String>>,
    pub enforce_size_limit: Option<bool>,
    pub fail_open: Option<bool>,
    pub throttle: Option<Spanned<bool>>,
    pub timeout: Option<Spanned<String>>,
    pub instances: Option<Spanned<u32>>,
    pub memory_mb: Option<Spanned<u32>>,
    pub fetch: Option<Spanned<Vec<Spanned<String>>>>,
    pub fetch_timeout: Option<Spanned<String>>,
    pub fetch_max_calls: Option<Spanned<u32>>,
    pub fetch_max_bytes: Option<Spanned<u64>>,
}

/// `[kvs.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKvs {
    pub file: Spanned<String>,
}
