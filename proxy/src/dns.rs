//! Asynchronous origin name resolution with a cache.
//!
//! pingora's `HttpPeer::new` resolves with blocking DNS on the proxy thread and panics on an
//! unknown name, so verge never hands it a name: origins are resolved here, off the hot path
//! when cached, and always within the origin's connect timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Resolved addresses by `(host, port)`, kept for each origin's `dns_ttl`.
#[derive(Debug, Default)]
pub struct DnsCache {
    entries: Mutex<HashMap<(String, u16), (SocketAddr, Instant)>>,
}

impl DnsCache {
    /// Resolve `host:port`: IP literals at once, names from the cache or the system resolver.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<SocketAddr, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_owned(), port);
        if let Some(addr) = self.cached(&key) {
            return Ok(addr);
        }
        let lookup = tokio::net::lookup_host((host, port));
        let addr = match tokio::time::timeout(timeout, lookup).await {
            Err(_) => return Err(format!("resolving {host} timed out after {timeout:?}")),
            Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
            // IPv4 first, as CloudFront connects to origins (its default address type).
            Ok(Ok(addrs)) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .copied()
                    .ok_or_else(|| format!("{host} resolved to no address"))?
            }
        };
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (addr, Instant::now() + ttl));
        }
        Ok(addr)
    }

    fn cached(&self, key: &(String, u16)) -> Option<SocketAddr> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(addr, _)| *addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn ip_literals_need_no_lookup() {
        let cache = DnsCache::default();
        let a = cache.resolve("::1", 81, T, T).await.unwrap();
        assert_eq!(a, "[::1]:81".parse().unwrap());
    }

    #[tokio::test]
    async fn names_resolve_and_are_cached() {
        let cache = DnsCache::default();
        let a = cache.resolve("localhost", 8080, T, T).await.unwrap();
        assert!(a.ip().is_loopback());
        assert_eq!(cache.cached(&("localhost".into(), 8080)), Some(a));
    }

    #[tokio::test]
    async fn unknown_names_are_an_error_not_a_panic() {
        let cache = DnsCache::default();
        let e = cache
            .resolve("no-such-host.invalid", 80, T, T)
            .await
            .unwrap_err();
        assert!(e.contains("no-such-host.invalid"), "{e}");
    }
}
