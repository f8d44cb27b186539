//! Origins as pingora peers: addresses resolved by [`crate::dns`], every timeout set, TLS
//! verification on unless the origin opts out, and a per-origin CA when configured.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{WrappedX509, parse_x509};
use verge_config::{Origin, Scheme};

/// A configured origin, ready to make peers.
#[derive(Debug)]
pub struct OriginTarget {
    /// The configuration.
    pub origin: Arc<Origin>,
    /// The origin's own trust anchors, parsed once per snapshot.
    ca: Option<Arc<[WrappedX509]>>,
    /// The `Host` value for this origin, built once.
    pub host_header: HeaderValue,
    /// This origin's latency histogram, resolved once.
    pub duration: prometheus::Histogram,
    /// The address, when the origin's host is an IP literal (parsed once, no lookup needed).
    pub literal: Option<SocketAddr>,
    /// Headers added to every request sent to it (set by `cf.updateRequestOrigin`).
    pub custom_headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl OriginTarget {
    /// Prepare an origin; fails on an unusable CA file.
    pub fn new(origin: Arc<Origin>, metrics: &crate::metrics::Metrics) -> Result<Self, String> {
        let ca = match &origin.ca_pem {
            Some(pem) => Some(Arc::from(parse_ca(pem)?)),
            None => None,
        };
        let (host_header, literal) = addressing(&origin)?;
        let duration = metrics
            .origin_duration
            .with_label_values(&[origin.name.as_str()]);
        Ok(OriginTarget {
            origin,
            ca,
            host_header,
            duration,
            literal,
            custom_headers: Vec::new(),
        })
    }

    /// A variant of this origin for one request (a function changed its settings): the same
    /// trust anchors (unless `origin` has no `ca_pem`) and latency histogram, everything else
    /// from `origin`.
    pub fn variant(&self, origin: Origin) -> Result<Self, String> {
        let (host_header, literal) = addressing(&origin)?;
        // The trust anchors parsed from `ca_pem`, unless the variant dropped them.
        let ca = origin.ca_pem.as_ref().and(self.ca.clone());
        Ok(OriginTarget {
            origin: Arc::new(origin),
            ca,
            host_header,
            duration: self.duration.clone(),
            literal,
            custom_headers: self.custom_headers.clone(),
        })
    }

    /// A peer for one attempt at `addr`.
    pub fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let o = &self.origin;
        let tls = o.scheme == Scheme::Https;
        let mut peer = HttpPeer::new(addr, tls, if tls { o.sni.clone() } else { String::new() });
        let opts = &mut peer.options;
        opts.connection_timeout = Some(o.connect_timeout);
        opts.total_connection_timeout = Some(o.connect_timeout);
        opts.read_timeout = Some(o.read_timeout);
        opts.write_timeout = Some(o.write_timeout);
        opts.idle_timeout = Some(o.idle_timeout);
        opts.verify_cert = o.verify_tls;
        opts.verify_hostname = o.verify_tls;
        // Setting ALPN explicitly makes pingora's rustls connector build a per-peer client
        // configuration, which is where the verification mode is applied.
        opts.alpn = ALPN::H1;
        if let Some(ca) = &self.ca {
            opts.ca = Some(ca.clone());
        }
        peer
    }
}

/// The `Host` value of an origin, and its address when the host is an IP literal (no lookup).
fn addressing(origin: &Origin) -> Result<(HeaderValue, Option<SocketAddr>), String> {
    let host_header = HeaderValue::from_str(&origin.authority())
        .map_err(|e| format!("the origin host cannot be a Host header: {e}"))?;
    let literal = origin
        .host
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, origin.port));
    Ok((host_header, literal))
}

/// Parse PEM trust anchors, refusing files without any or with an unparsable one (pingora's
/// own parser would panic on bad DER, so every certificate is checked by rustls first).
fn parse_ca(pem: &[u8]) -> Result<Vec<WrappedX509>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM in ca_file: {e}"))?;
    if certs.is_empty() {
        return Err("ca_file holds no certificate".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("unusable certificate in ca_file: {e}"))?;
    }
    Ok(certs
        .into_iter()
        .map(|c| WrappedX509::new(c.to_vec(), parse_x509))
        .collect())
}
