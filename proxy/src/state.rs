//! State shared by every request of one proxy: the published snapshot, the DNS cache, metrics,
//! TLS certificate stores — and reloading, which replaces the snapshot and certificates only
//! when everything new has been built.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;
use verge_config::{Config, ConfigError, ConfigErrors};

use verge_functions::{FastPool, PoolConfig};

use crate::access_log::AccessLog;
use crate::dns::DnsCache;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::tls::{CertStore, load_certified_key};

/// Everything the request path shares.
pub struct ProxyState {
    store: ArcSwap<Snapshot>,
    /// Origin name resolution.
    pub dns: DnsCache,
    /// This proxy's metrics.
    pub metrics: Metrics,
    /// Where access-log lines go (chosen at start; restart-only).
    pub access_log: AccessLog,
    /// One certificate store per `[[server.tls]]` listener, in order.
    pub certs: Vec<Arc<CertStore>>,
    /// The fast (CloudFront Functions) worker pool.
    pub functions: FastPool,
    reload_lock: Mutex<()>,
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new snapshot's generation.
    pub generation: u64,
    /// Restart-only settings that changed and were **not** applied.
    pub restart_required: Vec<String>,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration was rejected.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// Metrics could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Worker threads could not be started.
    #[error("cannot start worker threads: {0}")]
    Threads(#[from] std::io::Error),
}

fn load_certs(config: &Config) -> Result<Vec<CertifiedKey>, ConfigErrors> {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (i, tls) in config.server.tls.iter().enumerate() {
        match load_certified_key(&tls.cert, &tls.key) {
            Ok(k) => keys.push(k),
            Err(message) => errors.push(ConfigError::new(
                &config.file,
                tls.pos,
                format!("server.tls[{i}].cert"),
                message,
            )),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Every check a start or reload makes, without starting anything: certificates load and the
/// snapshot builds. `verge validate` runs this.
pub fn check(config: Config) -> Result<Arc<Config>, ConfigErrors> {
    let config = Arc::new(config);
    load_certs(&config)?;
    let metrics = Metrics::new().map_err(|e| {
        ConfigErrors::one(ConfigError::new(
            &config.file,
            verge_config::Pos::START,
            "",
            format!("metrics: {e}"),
        ))
    })?;
    Snapshot::build(config.clone(), 1, &metrics)?;
    Ok(config)
}

impl ProxyState {
    /// Build the first snapshot and certificate stores from a validated configuration, without
    /// an access log.
    pub fn new(config: Config) -> Result<Arc<Self>, StartError> {
        Self::with_access_log(config, AccessLog::disabled())
    }

    /// As [`ProxyState::new`], writing access-log lines to `access_log`.
    pub fn with_access_log(config: Config, access_log: AccessLog) -> Result<Arc<Self>, StartError> {
        let config = Arc::new(config);
        let metrics = Metrics::new()?;
        let certs = load_certs(&config)?
            .into_iter()
            .map(CertStore::new)
            .collect();
        let mut snapshot = Snapshot::build(config.clone(), 1, &metrics)?;
        let functions = FastPool::start(PoolConfig::default())?;
        snapshot.workers = Some(functions.warm(fast_functions(&config))?);
        Ok(Arc::new(ProxyState {
            store: ArcSwap::from_pointee(snapshot),
            dns: DnsCache::default(),
            metrics,
            access_log,
            functions,
            certs,
            reload_lock: Mutex::new(()),
        }))
    }

    /// The snapshot new requests start with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.store.load_full()
    }

    /// Reload from the running configuration's file. On any error nothing changes: the old
    /// snapshot and certificates keep serving, the error is logged and counted.
    pub fn reload(&self, why: &str) -> Result<ReloadReport, ConfigErrors> {
        let file = self.snapshot().config.file.clone();
        let result = verge_config::load(&file).and_then(|config| self.apply(config));
        match &result {
            Ok(report) => {
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(
                    trigger = why,
                    generation = report.generation,
                    "configuration reloaded"
                );
                if !report.restart_required.is_empty() {
                    self.metrics.restart_required.inc();
                    tracing::warn!(
                        trigger = why,
                        fields = %report.restart_required.join(", "),
                        "these settings changed but only take effect after a restart; the running values stay"
                    );
                }
            }
            Err(errors) => {
                self.metrics.reloads.with_label_values(&["failed"]).inc();
                tracing::error!(trigger = why, errors = %errors, "reload failed; the previous configuration keeps serving");
            }
        }
        result
    }

    /// Publish a new configuration once its snapshot and certificates are fully built.
    pub fn apply(&self, config: Config) -> Result<ReloadReport, ConfigErrors> {
        // Reloads are rare; serializing them keeps generations ordered. Never held across await.
        let _guard = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.snapshot();
        let restart_required = current.config.restart_only_changes(&config);
        let config = Arc::new(config);
        let keys = load_certs(&config)?;
        let mut next = Snapshot::build(config.clone(), current.generation + 1, &self.metrics)?;
        // A new generation of workers, warmed with the new functions, before anything is
        // published: serving workers never compile during a reload, and requests of the old
        // snapshot finish on the old generation, which then exits.
        match self.functions.warm(fast_functions(&config)) {
            Ok(workers) => next.workers = Some(workers),
            Err(e) => {
                return Err(ConfigErrors::one(ConfigError::new(
                    &config.file,
                    verge_config::Pos::START,
                    "",
                    format!("cannot start fast-tier workers: {e}"),
                )));
            }
        }
        // Certificates reload in place for the listeners that exist; a changed listener list
        // is a restart-only change reported above.
        for (store, key) in self.certs.iter().zip(keys) {
            store.replace(key);
        }
        let generation = next.generation;
        self.store.store(Arc::new(next));
        Ok(ReloadReport {
            generation,
            restart_required,
        })
    }
}

/// The functions the fast pool runs, to warm a new generation with.
fn fast_functions(config: &Config) -> Vec<Arc<verge_config::FunctionDef>> {
    config
        .functions
        .values()
        .filter(|f| f.runtime != verge_config::Runtime::LambdaEdge)
        .cloned()
        .collect()
}
