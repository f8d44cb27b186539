//! A viewer-request function's origin choice (`cf.selectRequestOriginById`,
//! `cf.updateRequestOrigin`, `cf.createRequestOriginGroup`) turned into the route this one
//! request takes. Named origins come from the request's snapshot; an update derives a variant of
//! the request's origin (for a group, of its primary only, as CloudFront does).

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use verge_config::{Origin, OriginGroup, S3Bucket, Scheme, Signing};
use verge_functions::{OriginChoice, OriginKind, OriginOverrides, OriginUpdate};

use crate::ctx::RequestCtx;
use crate::origin::OriginTarget;
use crate::snapshot::Route;

/// The route for `choice`, or why it cannot be taken (a validation error).
pub fn route_for(ctx: &RequestCtx, choice: OriginChoice) -> Result<Route, String> {
    let named = |id: &str, helper: &str| {
        ctx.snapshot
            .origin(id)
            .cloned()
            .ok_or_else(|| format!("cf.{helper}: no origin is named `{id}` in the configuration"))
    };
    match choice {
        OriginChoice::Named { id, overrides } => {
            let target = named(&id, "selectRequestOriginById")?;
            Ok(Route::Single(with_overrides(target, &overrides)?))
        }
        OriginChoice::Group {
            primary,
            secondary,
            failover_status,
            overrides,
        } => {
            let primary = with_overrides(named(&primary, "createRequestOriginGroup")?, &overrides)?;
            let secondary =
                with_overrides(named(&secondary, "createRequestOriginGroup")?, &overrides)?;
            let group = OriginGroup {
                name: format!("{}+{}", primary.origin.name, secondary.origin.name),
                primary: primary.origin.clone(),
                secondary: secondary.origin.clone(),
                failover_status,
            };
            Ok(Route::Group {
                group: Arc::new(group),
                primary,
                secondary,
            })
        }
        OriginChoice::Update(update) => {
            let current = ctx
                .route()
                .ok_or("cf.updateRequestOrigin: the request has no origin to update")?;
            let primary = Arc::new(updated(current.origin(0), &update)?);
            Ok(match current {
                Route::Single(_) => Route::Single(primary),
                Route::Group {
                    group, secondary, ..
                } => Route::Group {
                    group: group.clone(),
                    primary,
                    secondary: secondary.clone(),
                },
            })
        }
    }
}

fn header_value(value: &str, what: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|e| format!("{what} `{value}` cannot be sent: {e}"))
}

/// Why an update cannot sign: the request's origin has nothing to sign with.
fn no_credentials(origin: &str) -> String {
    format!(
        "originAccessControlConfig: this request's origin `{origin}` has no credentials to sign \
         with (give it origins.NAME.s3.credentials_file)"
    )
}

/// Make `origin` the kind of origin `update` names: a bucket (with the configured bucket's
/// credentials, signing as the update or the configured bucket says) or a custom origin (never
/// signed); an update that names no kind may only change how a bucket signs.
fn apply_kind(origin: &mut Origin, update: &OriginUpdate) -> Result<(), String> {
    match &update.kind {
        None => {
            if let Some(signing) = update.signing
                && let Some(bucket) = &mut origin.s3
            {
                if signing != Signing::Never && bucket.credentials.is_none() {
                    return Err(no_credentials(&origin.name));
                }
                bucket.signing = signing;
            }
        }
        Some(OriginKind::Custom) => origin.s3 = None,
        Some(OriginKind::S3 { region }) => {
            // The configured bucket's credentials sign for the bucket the request goes to, in
            // its region, as the update or the configured bucket says; a custom origin never
            // gets them.
            let (credentials, configured) = match origin.s3.take() {
                Some(bucket) => (bucket.credentials, bucket.signing),
                None => (None, Signing::Always),
            };
            let signing = update.signing.unwrap_or(configured);
            if update.signing.is_some_and(|s| s != Signing::Never) && credentials.is_none() {
                return Err(no_credentials(&origin.name));
            }
            if credentials.is_some() && signing != Signing::Never && region.is_empty() {
                return Err(format!(
                    "request.origin.s3.region is required: requests to `{}` are signed, and a \
                     signature names the bucket's region",
                    origin.host
                ));
            }
            origin.s3 = Some(S3Bucket {
                region: region.clone(),
                credentials,
                signing,
            });
        }
    }
    Ok(())
}

/// `hostHeader` and `sni` applied to a configured origin (unchanged when neither is set).
fn with_overrides(
    target: Arc<OriginTarget>,
    overrides: &OriginOverrides,
) -> Result<Arc<OriginTarget>, String> {
    if overrides == &OriginOverrides::default() {
        return Ok(target);
    }
    let mut origin: Origin = (*target.origin).clone();
    if let Some(sni) = &overrides.sni {
        origin.sni = sni.clone();
    }
    let mut variant = target.variant(origin)?;
    if let Some(host) = &overrides.host_header {
        variant.host_header = header_value(host, "hostHeader")?;
    }
    Ok(Arc::new(variant))
}

/// The request's origin with an update applied: `cf.updateRequestOrigin`'s fields, or a
/// Lambda@Edge function's changed `request.origin`.
pub fn updated(base: &OriginTarget, update: &OriginUpdate) -> Result<OriginTarget, String> {
    let mut origin: Origin = (*base.origin).clone();
    // The configured bucket, still named by its domain, keeps its own address, scheme and
    // trust (a stand-in such as a local S3-compatible store); any other bucket is AWS's public
    // HTTPS endpoint, its certificate checked against the system's roots whatever the
    // configured origin trusts or skips.
    let to_bucket = matches!(update.kind, Some(OriginKind::S3 { .. }));
    let same_bucket = to_bucket
        && origin.s3.is_some()
        && update
            .domain_name
            .as_ref()
            .is_none_or(|domain| *domain == origin.host);
    let (https, port) = if same_bucket {
        (None, None)
    } else {
        (update.https, update.port)
    };
    if let Some(https) = https {
        origin.scheme = if https { Scheme::Https } else { Scheme::Http };
        if port.is_none() {
            origin.port = if https { 443 } else { 80 };
        }
    }
    if let Some(domain) = update.domain_name.as_ref().filter(|_| !same_bucket) {
        origin.host = domain.clone();
        // The server name follows the new domain unless one is given.
        origin.sni = domain.clone();
    }
    if let Some(port) = port {
        origin.port = port;
    }
    if let Some(path) = &update.origin_path {
        origin.path = path.clone();
    }
    if let Some(sni) = &update.overrides.sni {
        origin.sni = sni.clone();
    }
    if let Some(t) = update.connect_timeout {
        origin.connect_timeout = t;
    }
    if let Some(t) = update.read_timeout {
        origin.read_timeout = t;
    }
    if let Some(t) = update.keep_alive_timeout {
        origin.idle_timeout = t;
    }
    if to_bucket && !same_bucket {
        origin.verify_tls = true;
        origin.ca_pem = None;
    }
    apply_kind(&mut origin, update)?;
    // A new domain is the new Host unless the viewer's is preserved or one is given.
    let mut variant = base.variant(origin)?;
    if let Some(host) = &update.overrides.host_header {
        variant.host_header = header_value(host, "hostHeader")?;
    }
    if let Some(headers) = &update.custom_headers {
        variant.custom_headers = headers
            .iter()
            .map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("customHeaders: `{name}`: {e}"))?;
                Ok((name, header_value(value, "customHeaders value")?))
            })
            .collect::<Result<_, String>>()?;
    }
    Ok(variant)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::metrics::Metrics;

    /// The target of the configured origin `https://origin.example:8443/base`, whose certificate
    /// is not verified.
    fn base() -> OriginTarget {
        let config = verge_config::parse(
            "[origins.o]\nurl = \"https://origin.example:8443/base\"\nverify_tls = false\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n",
            Path::new("v.toml"),
        )
        .unwrap();
        OriginTarget::new(config.origins["o"].clone(), &Metrics::new().unwrap()).unwrap()
    }

    #[test]
    fn an_s3_switch_goes_to_the_bucket_over_verified_https_and_a_custom_one_leaves_s3() {
        let update = OriginUpdate {
            domain_name: Some("b.s3.amazonaws.com".into()),
            origin_path: Some("/images".into()),
            custom_headers: Some(vec![("x-key".into(), "k".into())]),
            port: Some(443),
            https: Some(true),
            kind: Some(OriginKind::S3 {
                region: "us-west-2".into(),
            }),
            ..OriginUpdate::default()
        };
        let s3 = updated(&base(), &update).unwrap();
        let o = &s3.origin;
        assert_eq!(o.scheme, Scheme::Https);
        assert_eq!((o.host.as_str(), o.port), ("b.s3.amazonaws.com", 443));
        assert_eq!(
            (o.sni.as_str(), o.path.as_str()),
            ("b.s3.amazonaws.com", "/images")
        );
        assert_eq!(o.s3.as_ref().map(|b| b.region.as_str()), Some("us-west-2"));
        assert_eq!(s3.custom_headers.len(), 1);
        // The configured origin skipped verification; the bucket does not.
        let peer = s3.peer("127.0.0.1:443".parse().unwrap());
        assert!(peer.options.verify_cert && peer.options.verify_hostname);
        assert!(peer.options.ca.is_none());

        // A custom update from that S3 origin is a custom origin again, its TLS setting kept.
        let custom = OriginUpdate {
            domain_name: Some("c.example".into()),
            port: Some(8080),
            https: Some(false),
            kind: Some(OriginKind::Custom),
            ..OriginUpdate::default()
        };
        let back = updated(&s3, &custom).unwrap();
        assert_eq!(back.origin.s3, None);
        assert_eq!(back.origin.scheme, Scheme::Http);
        assert_eq!(
            (back.origin.host.as_str(), back.origin.port),
            ("c.example", 8080)
        );
        // A custom update of the configured origin keeps its choice not to verify.
        let plain = updated(&base(), &custom).unwrap();
        assert!(!plain.origin.verify_tls);
    }

    /// The configured S3 origin `http://bucket.local:9000/base` (a local stand-in).
    fn bucket() -> OriginTarget {
        let config = verge_config::parse(
            "[origins.b]\nurl = \"http://bucket.local:9000/base\"\ns3 = { region = \"eu-west-1\" }\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"b\"\n",
            Path::new("v.toml"),
        )
        .unwrap();
        OriginTarget::new(config.origins["b"].clone(), &Metrics::new().unwrap()).unwrap()
    }

    #[test]
    fn a_configured_bucket_keeps_its_address_while_its_domain_stays_and_its_kind_unless_told() {
        let s3 = |domain: &str| OriginUpdate {
            domain_name: Some(domain.into()),
            origin_path: Some("/other".into()),
            port: Some(443),
            https: Some(true),
            kind: Some(OriginKind::S3 {
                region: "eu-west-1".into(),
            }),
            ..OriginUpdate::default()
        };
        // The same bucket, another path: still the configured address and scheme.
        let same = updated(&bucket(), &s3("bucket.local")).unwrap();
        let o = &same.origin;
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port, o.path.as_str()),
            (Scheme::Http, "bucket.local", 9000, "/other")
        );
        assert_eq!(o.s3.as_ref().map(|b| b.region.as_str()), Some("eu-west-1"));
        // Another bucket: AWS's HTTPS endpoint.
        let other = updated(&bucket(), &s3("other.s3.amazonaws.com")).unwrap();
        let o = &other.origin;
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port),
            (Scheme::Https, "other.s3.amazonaws.com", 443)
        );
        assert!(o.verify_tls);
        // An update that names no kind (cf.updateRequestOrigin) leaves a bucket a bucket.
        let timeouts = OriginUpdate {
            read_timeout: Some(std::time::Duration::from_secs(7)),
            ..OriginUpdate::default()
        };
        let kept = updated(&bucket(), &timeouts).unwrap();
        assert_eq!(
            kept.origin.s3.as_ref().map(|b| b.region.as_str()),
            Some("eu-west-1")
        );
        assert_eq!(kept.origin.read_timeout, std::time::Duration::from_secs(7));
    }

    #[test]
    fn a_signing_buckets_credentials_follow_a_switch_to_another_bucket_never_to_a_custom_origin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("aws"),
            "[default]\naws_access_key_id = AKID\naws_secret_access_key = s\n",
        )
        .unwrap();
        let config = verge_config::parse(
            "[origins.b]\nurl = \"https://b.s3.amazonaws.com\"\n\
             s3 = { region = \"eu-west-1\", credentials_file = \"aws\", signing = \"no-override\" }\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"b\"\n",
            &dir.path().join("v.toml"),
        )
        .unwrap();
        let signing =
            OriginTarget::new(config.origins["b"].clone(), &Metrics::new().unwrap()).unwrap();
        let to = |region: &str| OriginUpdate {
            domain_name: Some("other.s3.amazonaws.com".into()),
            kind: Some(OriginKind::S3 {
                region: region.into(),
            }),
            ..OriginUpdate::default()
        };
        let other = updated(&signing, &to("us-west-2")).unwrap();
        let moved = other.origin.s3.as_ref().unwrap();
        assert_eq!(moved.region, "us-west-2");
        assert_eq!(moved.credentials.as_ref().unwrap().access_key_id, "AKID");
        // The configured bucket's signing behaviour goes with its credentials.
        assert_eq!(moved.signing, Signing::NoOverride);
        let e = updated(&signing, &to("")).unwrap_err();
        assert!(e.contains("request.origin.s3.region is required"), "{e}");
        let custom = OriginUpdate {
            domain_name: Some("c.example".into()),
            kind: Some(OriginKind::Custom),
            ..OriginUpdate::default()
        };
        assert_eq!(updated(&signing, &custom).unwrap().origin.s3, None);

        // cf.updateRequestOrigin's origin access control: signing needs the origin's
        // credentials, and `never` turns it off.
        let oac = |behavior: Signing| OriginUpdate {
            signing: Some(behavior),
            ..to("eu-central-1")
        };
        let signed = updated(&signing, &oac(Signing::Always)).unwrap();
        let oac_bucket = signed.origin.s3.as_ref().unwrap();
        assert_eq!(oac_bucket.region, "eu-central-1");
        assert!(oac_bucket.credentials.is_some());
        let unsigned = updated(&signing, &oac(Signing::Never)).unwrap();
        assert_eq!(unsigned.origin.s3.as_ref().unwrap().signing, Signing::Never);
        let e = updated(&bucket(), &oac(Signing::NoOverride)).unwrap_err();
        assert!(e.contains("has no credentials to sign with"), "{e}");
        let off = OriginUpdate {
            signing: Some(Signing::Never),
            ..OriginUpdate::default()
        };
        let kept_bucket = updated(&signing, &off).unwrap();
        let kept = kept_bucket.origin.s3.as_ref().unwrap();
        assert_eq!(
            (kept.region.as_str(), kept.signing),
            ("eu-west-1", Signing::Never)
        );
        assert!(kept.signer(false).is_none());
    }
}
