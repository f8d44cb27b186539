//! verge's admin app on the admin listener (loopback by default): `GET /metrics` in Prometheus
//! text, `GET /healthz` with the serving configuration generation.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::ProxyState;

/// The admin HTTP app.
pub struct AdminApp {
    state: Arc<ProxyState>,
}

impl AdminApp {
    /// An admin app reporting on `state`.
    pub fn new(state: Arc<ProxyState>) -> Self {
        AdminApp { state }
    }

    fn answer(&self, method: &http::Method, path: &str) -> (StatusCode, &'static str, Vec<u8>) {
        if method != http::Method::GET && method != http::Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"only GET\n".to_vec(),
            );
        }
        match path {
            "/metrics" => {
                let pool = &self.state.functions;
                let metrics = &self.state.metrics;
                let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                metrics.retired_workers.set(gauge(pool.retired_workers()));
                metrics.worker_generation.set(gauge(pool.generation()));
                metrics
                    .engine_collections
                    .set(gauge(pool.engine_collections()));
                let loads = pool.loads();
                for (when, n) in [
                    ("warm", loads.warm),
                    ("on_demand", loads.on_demand),
                    ("spare", loads.spare),
                    ("confirm", loads.confirm),
                ] {
                    metrics
                        .context_loads
                        .with_label_values(&[when])
                        .set(gauge(n));
                }
                let snapshot = self.state.snapshot();
                for (function, stats) in snapshot.edge.stats() {
                    use std::sync::atomic::Ordering::Relaxed;
                    for (what, n) in [
                        ("cold_starts", &stats.cold_starts),
                        ("cold_start_microseconds", &stats.cold_start_micros),
                        ("timeouts", &stats.timeouts),
                        ("concurrency_refusals", &stats.concurrency_refusals),
                        ("parked", &stats.parked),
                    ] {
                        metrics
                            .edge
                            .with_label_values(&[function, what])
                            .set(gauge(n.load(Relaxed)));
                    }
                }
                for (function, now) in snapshot.edge.occupancy() {
                    for (what, n) in [("instances", now.instances), ("idle", now.idle)] {
                        metrics
                            .edge
                            .with_label_values(&[function, what])
                            .set(gauge(n as u64));
                    }
                }
                (
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.state.metrics.render().into_bytes(),
                )
            }
            "/healthz" => {
                let body = serde_json::json!({
                    "status": "ok",
                    "generation": self.state.snapshot().generation,
                });
                (
                    StatusCode::OK,
                    "application/json",
                    body.to_string().into_bytes(),
                )
            }
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                b"try /metrics or /healthz\n".to_vec(),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let (status, content_type, body) = self.answer(&req.method, req.uri.path());
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    }
}
