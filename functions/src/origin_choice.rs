//! Origin changes a viewer-request function asks for through the `cloudfront` module (spec
//! §1.5): `selectRequestOriginById`, `updateRequestOrigin` and `createRequestOriginGroup`,
//! checked against CloudFront's limits when called (a bad parameter throws at the call, with the
//! rule it broke) and handed to the proxy as plain data.

use std::time::Duration;

use serde_json::Value;
use verge_config::Signing;

/// The longest domain name, host header or SNI CloudFront accepts.
const MAX_NAME: usize = 253;
/// The longest custom-origin path.
const MAX_ORIGIN_PATH: usize = 255;

/// Headers CloudFront does not take as origin custom headers (beyond the ones a function may
/// never set at all).
const NOT_CUSTOM_HEADERS: &[&str] = &[
    "cache-control",
    "connection",
    "content-length",
    "cookie",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "max-forwards",
    "pragma",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "request-range",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
    "x-forwarded-for",
];

/// Where a function sent the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginChoice {
    /// An origin from the configuration, by name.
    Named {
        /// Its name.
        id: String,
        /// Host header and SNI overrides.
        overrides: OriginOverrides,
    },
    /// The request's origin with some settings changed.
    Update(Box<OriginUpdate>),
    /// Two configured origins as a failover group for this request.
    Group {
        /// Tried first.
        primary: String,
        /// Tried when the primary fails.
        secondary: String,
        /// Primary statuses that fail over.
        failover_status: Vec<u16>,
        /// Host header and SNI overrides for both.
        overrides: OriginOverrides,
    },
}

/// `hostHeader` / `sni` overrides (`allowedCertificateNames` is checked, then not used: verge
/// verifies the origin certificate against the name it connects with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginOverrides {
    /// The `Host` header sent to the origin.
    pub host_header: Option<String>,
    /// The TLS server name.
    pub sni: Option<String>,
}

/// `cf.updateRequestOrigin(params)`: each field left `None` keeps the request's origin's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginUpdate {
    /// `domainName`.
    pub domain_name: Option<String>,
    /// `originPath` (`Some("")` for none).
    pub origin_path: Option<String>,
    /// `hostHeader` and `sni`.
    pub overrides: OriginOverrides,
    /// `customHeaders`, names lower-case.
    pub custom_headers: Option<Vec<(String, String)>>,
    /// `customOriginConfig.port`.
    pub port: Option<u16>,
    /// `customOriginConfig.protocol == "https"`.
    pub https: Option<bool>,
    /// `timeouts.connectionTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `timeouts.readTimeout`.
    pub read_timeout: Option<Duration>,
    /// `timeouts.keepAliveTimeout`.
    pub keep_alive_timeout: Option<Duration>,
    /// What kind of origin the request's origin becomes: `None` keeps its kind
    /// (`cf.updateRequestOrigin` updates the origin it has); a Lambda@Edge `request.origin`
    /// names one.
    pub kind: Option<OriginKind>,
    /// Which requests to the origin are signed, with the configured origin's credentials
    /// (`cf.updateRequestOrigin`'s `originAccessControlConfig`); `None` as the origin was.
    pub signing: Option<verge_config::Signing>,
}

/// The two kinds of origin Lambda@Edge's `request.origin` tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginKind {
    /// `request.origin.custom`.
    Custom,
    /// `request.origin.s3`, with its `region` (empty when the function gave none).
    S3 {
        /// `region`.
        region: String,
    },
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a serde_json::Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be an object"))
}

fn known_fields(
    map: &serde_json::Map<String, Value>,
    what: &str,
    allowed: &[&str],
) -> Result<(), String> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{what}: unknown field `{k}`")),
        None => Ok(()),
    }
}

fn string(
    map: &serde_json::Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{what}.{key} must be a string")),
    }
}

/// A host name as CloudFront takes it for `domainName`, `hostHeader` and `sni`: at most 253
/// characters, no `:`, not an IP address.
pub fn check_host_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("{what} must be 1 to {MAX_NAME} characters"));
    }
    if name.contains(':') {
        return Err(format!(
            "{what} must not contain `:` (use customOriginConfig.port)"
        ));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("{what} must be a domain name, not an IP address"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(format!("{what} `{name}` is not a valid domain name"));
    }
    Ok(())
}

/// An origin path as CloudFront takes it: empty, or starting with `/`, not ending with `/`,
/// URL-encoded, at most 255 characters.
pub fn check_origin_path(path: &str, what: &str) -> Result<(), String> {
    let valid = path.is_empty()
        || (path.starts_with('/')
            && !path.ends_with('/')
            && path.len() <= MAX_ORIGIN_PATH
            && path.bytes().all(|b| b.is_ascii_graphic()));
    if !valid {
        return Err(format!(
            "{what} `{path}` must start with `/`, not end with `/`, be URL-encoded and at most {MAX_ORIGIN_PATH} characters"
        ));
    }
    Ok(())
}

fn overrides(map: &serde_json::Map<String, Value>, what: &str) -> Result<OriginOverrides, String> {
    let host_header = string(map, "hostHeader", what)?;
    let sni = string(map, "sni", what)?;
    if let Some(h) = &host_header {
        check_host_name(h, &format!("{what}.hostHeader"))?;
    }
    if let Some(s) = &sni {
        check_host_name(s, &format!("{what}.sni"))?;
    }
    if let Some(names) = map.get("allowedCertificateNames") {
        let names = names
            .as_array()
            .ok_or_else(|| format!("{what}.allowedCertificateNames must be an array"))?;
        if names.len() > 20
            || names
                .iter()
                .any(|n| n.as_str().is_none_or(|n| n.len() > 64))
        {
            return Err(format!(
                "{what}.allowedCertificateNames: at most 20 names of at most 64 characters"
            ));
        }
    }
    Ok(OriginOverrides { host_header, sni })
}

fn seconds(
    map: &serde_json::Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<Duration>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if range.contains(&n) => Ok(Some(Duration::from_secs(n))),
            _ => Err(format!(
                "timeouts.{key} must be a whole number of seconds from {} to {}",
                range.start(),
                range.end()
            )),
        },
    }
}

/// `cf.selectRequestOriginById(id, options)`.
pub fn select(id: &str, options: &Value) -> Result<OriginChoice, String> {
    let what = "selectRequestOriginById options";
    let overrides = match options {
        Value::Null => OriginOverrides::default(),
        v => {
            let map = object(v, what)?;
            known_fields(map, what, &["hostHeader", "sni", "allowedCertificateNames"])?;
            self::overrides(map, what)?
        }
    };
    if id.is_empty() {
        return Err("selectRequestOriginById needs an origin id".into());
    }
    Ok(OriginChoice::Named {
        id: id.to_owned(),
        overrides,
    })
}

/// `cf.updateRequestOrigin(params)`.
pub fn update(params: &Value) -> Result<OriginChoice, String> {
    let what = "updateRequestOrigin";
    let map = object(params, what)?;
    known_fields(
        map,
        what,
        &[
            "domainName",
            "hostHeader",
            "originPath",
            "customHeaders",
            "connectionAttempts",
            "originShield",
            "originAccessControlConfig",
            "timeouts",
            "customOriginConfig",
            "ipAddressType",
            "sni",
            "allowedCertificateNames",
        ],
    )?;
    let mut update = OriginUpdate {
        overrides: overrides(map, what)?,
        ..OriginUpdate::default()
    };
    if let Some(domain) = string(map, "domainName", what)? {
        check_host_name(&domain, "domainName")?;
        update.domain_name = Some(domain);
    }
    if let Some(path) = string(map, "originPath", what)? {
        check_origin_path(&path, "originPath")?;
        update.origin_path = Some(path);
    }
    if let Some(headers) = map.get("customHeaders") {
        let headers = object(headers, "customHeaders")?;
        let mut list = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let value = value
                .as_str()
                .ok_or_else(|| format!("customHeaders.{name} must be a string"))?;
            let valid_name = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
                });
            if !valid_name {
                return Err(format!(
                    "customHeaders: `{name}` must be a lower-case header name"
                ));
            }
            if crate::cff_event::is_disallowed(name)
                || NOT_CUSTOM_HEADERS.contains(&name.as_str())
                || name.starts_with("x-amz-")
            {
                return Err(format!(
                    "customHeaders: `{name}` cannot be set by a function"
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(format!("customHeaders.{name} contains a control character"));
            }
            list.push((name.clone(), value.to_owned()));
        }
        update.custom_headers = Some(list);
    }
    if let Some(attempts) = map.get("connectionAttempts")
        && !attempts.as_u64().is_some_and(|n| (1..=3).contains(&n))
    {
        return Err("connectionAttempts must be 1, 2 or 3".into());
    }
    if let Some(shield) = map.get("originShield") {
        let shield = object(shield, "originShield")?;
        let enabled = shield.get("enabled").and_then(Value::as_bool);
        if enabled.is_none()
            || (enabled == Some(true) && string(shield, "region", "originShield")?.is_none())
        {
            return Err("originShield needs `enabled`, and a `region` when enabled".into());
        }
    }
    if let Some(oac) = map.get("originAccessControlConfig") {
        access_control(object(oac, "originAccessControlConfig")?, &mut update)?;
    }
    if let Some(kind) = map.get("ipAddressType") {
        if !matches!(kind.as_str(), Some("ipv4" | "ipv6" | "dualstack")) {
            return Err("ipAddressType must be ipv4, ipv6 or dualstack".into());
        }
        if update.domain_name.is_none() {
            return Err("ipAddressType can be set only together with domainName".into());
        }
    }
    if let Some(timeouts) = map.get("timeouts") {
        let timeouts = object(timeouts, "timeouts")?;
        known_fields(
            timeouts,
            "timeouts",
            &[
                "readTimeout",
                "responseCompletionTimeout",
                "keepAliveTimeout",
                "connectionTimeout",
            ],
        )?;
        update.read_timeout = seconds(timeouts, "readTimeout", 1..=120)?;
        update.keep_alive_timeout = seconds(timeouts, "keepAliveTimeout", 1..=120)?;
        update.connect_timeout = seconds(timeouts, "connectionTimeout", 1..=10)?;
        if let Some(total) = seconds(timeouts, "responseCompletionTimeout", 1..=u64::MAX)?
            && update.read_timeout.is_some_and(|read| total < read)
        {
            return Err("timeouts.responseCompletionTimeout must be at least readTimeout".into());
        }
    }
    if let Some(config) = map.get("customOriginConfig") {
        let config = object(config, "customOriginConfig")?;
        known_fields(
            config,
            "customOriginConfig",
            &["port", "protocol", "sslProtocols"],
        )?;
        if let Some(port) = config.get("port") {
            let port = port
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or("customOriginConfig.port must be a port number")?;
            update.port = Some(port);
        }
        if let Some(protocol) = config.get("protocol") {
            update.https = Some(match protocol.as_str() {
                Some("http") => false,
                Some("https") => true,
                _ => return Err("customOriginConfig.protocol must be http or https".into()),
            });
        }
    }
    Ok(OriginChoice::Update(Box::new(update)))
}

/// `originAccessControlConfig`: enabled, the origin is an S3 bucket in `region` whose requests
/// are signed (SigV4) with the credentials of the request's configured origin, as its
/// `signingBehavior` says: `always` (the viewer's `authorization` replaced), `no-override`
/// (only without one) or `never`; `enabled: false`, they go unsigned.
fn access_control(
    oac: &serde_json::Map<String, Value>,
    update: &mut OriginUpdate,
) -> Result<(), String> {
    const WHAT: &str = "originAccessControlConfig";
    known_fields(
        oac,
        WHAT,
        &[
            "enabled",
            "region",
            "signingBehavior",
            "signingProtocol",
            "originType",
        ],
    )?;
    match oac.get("enabled").and_then(Value::as_bool) {
        Some(true) => {}
        Some(false) => {
            update.signing = Some(Signing::Never);
            return Ok(());
        }
        None => return Err(format!("{WHAT}.enabled must be true or false")),
    }
    match string(oac, "signingProtocol", WHAT)?.as_deref() {
        None | Some("sigv4") => {}
        Some(other) => return Err(format!("{WHAT}.signingProtocol `{other}` is not sigv4")),
    }
    match string(oac, "originType", WHAT)?.as_deref() {
        None | Some("s3") => {}
        Some(other @ ("mediastore" | "mediapackagev2" | "lambda")) => {
            return Err(format!(
                "{WHAT}.originType `{other}`: verge signs requests to S3 origins only"
            ));
        }
        Some(other) => return Err(format!("{WHAT}.originType `{other}` is not s3")),
    }
    let signing = match string(oac, "signingBehavior", WHAT)?.as_deref() {
        None | Some("always") => Signing::Always,
        Some("no-override") => Signing::NoOverride,
        Some("never") => Signing::Never,
        Some(other) => {
            return Err(format!(
                "{WHAT}.signingBehavior `{other}` is not always, never or no-override"
            ));
        }
    };
    let region = string(oac, "region", WHAT)?
        .filter(|r| verge_config::S3Bucket::region_ok(r))
        .ok_or_else(|| format!("{WHAT}.region must name the bucket's region, as eu-west-1"))?;
    if let Some(domain) = &update.domain_name
        && !verge_config::S3Bucket::domain_ok(domain)
    {
        return Err(format!(
            "domainName `{domain}` of an S3 origin must be lower case and at most {} characters",
            verge_config::S3Bucket::MAX_DOMAIN
        ));
    }
    update.kind = Some(OriginKind::S3 { region });
    update.signing = Some(signing);
    Ok(())
}

/// `cf.createRequestOriginGroup(params)`: `originIds` as two ids, or two
/// `{originId, originOverrides}` objects (the docs show both).
pub fn group(params: &Value) -> Result<OriginChoice, String> {
    let what = "createRequestOriginGroup";
    let map = object(params, what)?;
    known_fields(
        map,
        what,
        &[
            "originIds",
            "selectionCriteria",
            "failoverCriteria",
            "originOverrides",
        ],
    )?;
    let ids = map
        .get("originIds")
        .and_then(Value::as_array)
        .filter(|ids| ids.len() == 2)
        .ok_or("createRequestOriginGroup.originIds must list exactly two origins, primary first")?;
    let mut names = Vec::with_capacity(2);
    let mut overrides = match map.get("originOverrides") {
        Some(v) => self::overrides(object(v, "originOverrides")?, "originOverrides")?,
        None => OriginOverrides::default(),
    };
    for id in ids {
        match id {
            Value::String(s) => names.push(s.clone()),
            Value::Object(o) => {
                names.push(
                    string(o, "originId", "originIds[]")?
                        .ok_or("originIds[] objects need an originId")?,
                );
                if let Some(v) = o.get("originOverrides") {
                    overrides = self::overrides(object(v, "originOverrides")?, "originOverrides")?;
                }
            }
            _ => return Err("originIds entries must be strings or {originId} objects".into()),
        }
    }
    if let Some(criteria) = map.get("selectionCriteria")
        && !matches!(criteria.as_str(), Some("default" | "media-quality-score"))
    {
        return Err("selectionCriteria must be default or media-quality-score".into());
    }
    let codes = map
        .get("failoverCriteria")
        .and_then(|c| c.get("statusCodes"))
        .and_then(Value::as_array)
        .ok_or("createRequestOriginGroup.failoverCriteria.statusCodes is required")?;
    let failover_status = codes
        .iter()
        .map(|c| {
            c.as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..=599).contains(c))
                .ok_or_else(|| {
                    format!("failoverCriteria.statusCodes: {c} is not a 4xx or 5xx status")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secondary = names.pop().unwrap_or_default();
    let primary = names.pop().unwrap_or_default();
    Ok(OriginChoice::Group {
        primary,
        secondary,
        failover_status,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn update_takes_the_documented_fields_and_checks_their_limits() {
        let OriginChoice::Update(u) = update(&json!({
            "domainName": "eu.example.com",
            "originPath": "/v2",
            "hostHeader": "www.example.com",
            "customHeaders": {"x-origin-key": "s3cret"},
            "connectionAttempts": 2,
            "timeouts": {"readTimeout": 30, "connectionTimeout": 5, "keepAliveTimeout": 10},
            "customOriginConfig": {"port": 8443, "protocol": "https", "sslProtocols": ["TLSv1.2"]}
        }))
        .unwrap() else {
            panic!("an update")
        };
        assert_eq!(u.domain_name.as_deref(), Some("eu.example.com"));
        assert_eq!(u.origin_path.as_deref(), Some("/v2"));
        assert_eq!(u.overrides.host_header.as_deref(), Some("www.example.com"));
        assert_eq!(
            u.custom_headers,
            Some(vec![("x-origin-key".into(), "s3cret".into())])
        );
        assert_eq!((u.port, u.https), (Some(8443), Some(true)));
        assert_eq!(u.read_timeout, Some(Duration::from_secs(30)));
        assert_eq!(u.connect_timeout, Some(Duration::from_secs(5)));
        for (bad, why) in [
            (json!({"domainName": "10.0.0.1"}), "not an IP"),
            (json!({"domainName": "a.com:80"}), "`:`"),
            (json!({"domainName": "x".repeat(254)}), "1 to 253"),
            (json!({"originPath": "v2"}), "originPath"),
            (json!({"originPath": "/v2/"}), "originPath"),
            (json!({"customHeaders": {"X-Upper": "1"}}), "lower-case"),
            (json!({"customHeaders": {"host": "x"}}), "cannot be set"),
            (json!({"connectionAttempts": 4}), "1, 2 or 3"),
            (json!({"timeouts": {"connectionTimeout": 11}}), "1 to 10"),
            (
                json!({"timeouts": {"readTimeout": 30, "responseCompletionTimeout": 10}}),
                "at least",
            ),
            (
                json!({"customOriginConfig": {"protocol": "ftp"}}),
                "http or https",
            ),
            (json!({"ipAddressType": "ipv6"}), "together with domainName"),
            (json!({"originShield": {"enabled": true}}), "region"),
            (json!({"domain": "x"}), "unknown field `domain`"),
        ] {
            let e = update(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn origin_access_control_makes_a_signed_bucket_in_its_region_or_turns_signing_off() {
        let oac = |fields: Value| {
            let mut config = json!({"enabled": true, "region": "eu-central-1",
                "signingBehavior": "always", "signingProtocol": "sigv4", "originType": "s3"});
            for (k, v) in fields.as_object().unwrap() {
                config[k] = v.clone();
            }
            json!({"domainName": "b-eu.s3.eu-central-1.amazonaws.com",
                   "originAccessControlConfig": config})
        };
        let Ok(OriginChoice::Update(u)) = update(&oac(json!({}))) else {
            panic!("not an update")
        };
        assert_eq!(
            u.kind,
            Some(OriginKind::S3 {
                region: "eu-central-1".into()
            })
        );
        assert_eq!(u.signing, Some(Signing::Always));
        let Ok(OriginChoice::Update(u)) = update(&oac(json!({"signingBehavior": "never"}))) else {
            panic!("not an update")
        };
        assert_eq!(u.signing, Some(Signing::Never));
        let off = json!({"originAccessControlConfig": {"enabled": false}});
        let Ok(OriginChoice::Update(u)) = update(&off) else {
            panic!("not an update")
        };
        assert_eq!((u.kind, u.signing), (None, Some(Signing::Never)));
        let Ok(OriginChoice::Update(u)) = update(&oac(json!({"signingBehavior": "no-override"})))
        else {
            panic!("not an update")
        };
        assert_eq!(u.signing, Some(Signing::NoOverride));
        for (bad, why) in [
            (
                json!({"signingBehavior": "sometimes"}),
                "is not always, never or no-override",
            ),
            (json!({"originType": "mediastore"}), "S3 origins only"),
            (json!({"signingProtocol": "sigv2"}), "is not sigv4"),
            (json!({"region": "EU"}), "must name the bucket's region"),
            (json!({"region": null}), "must name the bucket's region"),
            (json!({"enabled": "yes"}), "enabled must be true or false"),
            (json!({"oai": true}), "unknown field `oai`"),
        ] {
            let e = update(&oac(bad.clone())).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let upper = json!({"domainName": "B.s3.amazonaws.com",
            "originAccessControlConfig": {"enabled": true, "region": "us-east-1"}});
        assert!(update(&upper).unwrap_err().contains("lower case"));
    }

    #[test]
    fn groups_take_ids_or_objects_and_need_failover_codes() {
        let expected = OriginChoice::Group {
            primary: "a".into(),
            secondary: "b".into(),
            failover_status: vec![500, 503],
            overrides: OriginOverrides::default(),
        };
        let criteria = json!({"statusCodes": [500, 503]});
        assert_eq!(
            group(&json!({"originIds": ["a", "b"], "failoverCriteria": criteria})).unwrap(),
            expected
        );
        assert_eq!(
            group(&json!({"originIds": [{"originId": "a"}, {"originId": "b"}], "failoverCriteria": criteria}))
                .unwrap(),
            expected
        );
        assert!(group(&json!({"originIds": ["a"], "failoverCriteria": criteria})).is_err());
        assert!(
            group(&json!({"originIds": ["a", "b"]}))
                .unwrap_err()
                .contains("required")
        );
        assert!(
            group(&json!({"originIds": ["a", "b"], "failoverCriteria": {"statusCodes": [200]}}))
                .is_err()
        );
        assert!(select("", &Value::Null).is_err());
        assert!(select("a", &json!({"hostHeader": "1.2.3.4"})).is_err());
    }
}
