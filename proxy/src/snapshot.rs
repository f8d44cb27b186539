//! The running configuration as the request path uses it: behaviors with their routes, origins
//! ready to make peers. A snapshot is built completely before it is published, and each request
//! keeps the one it started with.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use verge_config::{Behavior, Config, ConfigError, ConfigErrors, OriginGroup, Runtime, Target};

use verge_functions::EdgePool;
use verge_functions::kvs::KvStore;

use crate::metrics::{FunctionMeters, Metrics, RequestCounters, has_utilization};
use crate::origin::OriginTarget;

/// Where a behavior sends its requests.
#[derive(Debug)]
pub enum Route {
    /// One origin.
    Single(Arc<OriginTarget>),
    /// A primary and a secondary.
    Group {
        /// The group as configured.
        group: Arc<OriginGroup>,
        /// Its primary.
        primary: Arc<OriginTarget>,
        /// Its secondary.
        secondary: Arc<OriginTarget>,
    },
}

impl Route {
    /// The origin for an attempt: 0 is the first, 1 the failover.
    pub fn origin(&self, attempt: u8) -> &Arc<OriginTarget> {
        match self {
            Route::Single(o) => o,
            Route::Group { primary, .. } if attempt == 0 => primary,
            Route::Group { secondary, .. } => secondary,
        }
    }

    /// The group, when this is one.
    pub fn group(&self) -> Option<&OriginGroup> {
        match self {
            Route::Group { group, .. } => Some(group),
            Route::Single(_) => None,
        }
    }
}

/// A behavior with its route.
#[derive(Debug)]
pub struct BehaviorRoute {
    /// The behavior as configured.
    pub behavior: Behavior,
    /// Label for logs and metrics: the path pattern.
    pub label: String,
    /// Its route.
    pub route: Route,
    /// Its request counters.
    pub requests: RequestCounters,
    /// The counters of the function at each hook (by [`verge_config::Hook`]'s index).
    functions: [Option<FunctionMeters>; 4],
}

impl BehaviorRoute {
    /// The counters of the function at `hook`, if one runs there.
    pub fn function_meters(&self, hook: verge_config::Hook) -> Option<&FunctionMeters> {
        self.functions[hook as usize].as_ref()
    }
}

/// CloudFront's function size quota (10 KB).
const MAX_CODE_BYTES: usize = 10 * 1024;

/// How long loading one function may take when a configuration is checked.
const LOAD_CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// Load every function on a throwaway thread (syntax, top-level code, a handler), so a broken
/// function is a configuration error and never reaches a worker or an instance.
fn check_functions(config: &Config, errors: &mut Vec<ConfigError>) {
    for (name, f) in &config.functions {
        let checked = if f.runtime == Runtime::LambdaEdge {
            verge_functions::edge_runtime::check_loads(name, &f.code, LOAD_CHECK_DEADLINE)
        } else if f.enforce_size_limit && f.code.len() > MAX_CODE_BYTES {
            Err(format!(
                "{} bytes; CloudFront Functions allow {MAX_CODE_BYTES} (set enforce_size_limit = false to lift the limit)",
                f.code.len()
            ))
        } else {
            verge_functions::fast_pool::check_loads(&f.code, f.runtime, LOAD_CHECK_DEADLINE)
        };
        if let Err(message) = checked {
            errors.push(ConfigError::new(
                &config.file,
                f.pos,
                format!("functions.{name}.code"),
                format!("{}: {message}", f.code_path.display()),
            ));
        } else if f.runtime == Runtime::CloudfrontJs2 {
            // Said at every load (`verge validate` shows it on stderr); verge runs them.
            verge_functions::source_scan::warn_field_risks(name, &f.code_path, &f.code);
        }
    }
}

/// One published configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// The configuration it was built from.
    pub config: Arc<Config>,
    /// Increases with every successful reload; 1 for the first.
    pub generation: u64,
    behaviors: Vec<BehaviorRoute>,
    origins: HashMap<String, Arc<OriginTarget>>,
    kvs: HashMap<String, Arc<KvStore>>,
    /// The fast-tier workers warmed with this snapshot's functions (set by the state before it
    /// publishes the snapshot; `None` in a snapshot built only to check a configuration).
    pub workers: Option<Arc<verge_functions::Generation>>,
    /// The edge-tier instances of this snapshot's Lambda@Edge functions (started on first use).
    pub edge: EdgePool,
}

impl Snapshot {
    /// Build a snapshot, reporting anything the configuration check could not see (bad CA files,
    /// features this build does not run) as positioned configuration errors.
    pub fn build(
        config: Arc<Config>,
        generation: u64,
        metrics: &Metrics,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut targets: HashMap<&str, Arc<OriginTarget>> = HashMap::new();
        for (name, origin) in &config.origins {
            match OriginTarget::new(origin.clone(), metrics) {
                Ok(t) => {
                    targets.insert(name, Arc::new(t));
                }
                Err(message) => errors.push(ConfigError::new(
                    &config.file,
                    origin.pos,
                    format!("origins.{name}.ca_file"),
                    message,
                )),
            }
        }
        check_functions(&config, &mut errors);
        let mut kvs = HashMap::new();
        for (name, def) in &config.kvs {
            match KvStore::load(&def.file) {
                Ok(store) => {
                    kvs.insert(name.clone(), Arc::new(store));
                }
                Err(message) => errors.push(ConfigError::new(
                    &config.file,
                    def.pos,
                    format!("kvs.{name}.file"),
                    message,
                )),
            }
        }
        let mut behaviors = Vec::new();
        for b in &config.behaviors {
            let route = match &b.target {
                Target::Origin(o) => targets.get(o.name.as_str()).cloned().map(Route::Single),
                Target::Group(g) => match (
                    targets.get(g.primary.name.as_str()),
                    targets.get(g.secondary.name.as_str()),
                ) {
                    (Some(p), Some(s)) => Some(Route::Group {
                        group: g.clone(),
                        primary: p.clone(),
                        secondary: s.clone(),
                    }),
                    _ => None,
                },
            };
            if let Some(route) = route {
                let functions = verge_config::Hook::ALL.map(|hook| {
                    b.function(hook)
                        .map(|f| FunctionMeters::new(metrics, &f.name, has_utilization(f)))
                });
                behaviors.push(BehaviorRoute {
                    requests: RequestCounters::new(metrics, b.path_pattern.as_str()),
                    functions,
                    label: b.path_pattern.as_str().to_owned(),
                    behavior: b.clone(),
                    route,
                });
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| (e.pos.line, e.pos.col));
            return Err(ConfigErrors(errors));
        }
        let origins = targets
            .into_iter()
            .map(|(name, target)| (name.to_owned(), target))
            .collect();
        let edge = EdgePool::new(
            config
                .functions
                .values()
                .filter(|f| f.runtime == Runtime::LambdaEdge)
                .cloned(),
        );
        Ok(Snapshot {
            config,
            generation,
            behaviors,
            origins,
            kvs,
            workers: None,
            edge,
        })
    }

    /// The first behavior whose pattern matches `path`. Validation guarantees the last one is
    /// the default `*`, so a match always exists; `None` only for a snapshot with no behaviors.
    pub fn behavior_for(&self, path: &str) -> Option<(usize, &BehaviorRoute)> {
        self.behaviors
            .iter()
            .enumerate()
            .find(|(_, b)| b.behavior.path_pattern.matches(path))
    }

    /// A configured origin by name (`cf.selectRequestOriginById`).
    pub fn origin(&self, name: &str) -> Option<&Arc<OriginTarget>> {
        self.origins.get(name)
    }

    /// A loaded KeyValueStore by name.
    pub fn kvs(&self, name: &str) -> Option<&Arc<KvStore>> {
        self.kvs.get(name)
    }

    /// A behavior by position.
    pub fn behavior(&self, index: usize) -> Option<&BehaviorRoute> {
        self.behaviors.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn snapshot(text: &str) -> Snapshot {
        let config = verge_config::parse(text, Path::new("v.toml")).unwrap();
        Snapshot::build(Arc::new(config), 1, &Metrics::new().unwrap()).unwrap()
    }

    #[test]
    fn first_matching_behavior_wins_and_default_catches_the_rest() {
        let s = snapshot(
            r#"
[origins.a]
url = "http://127.0.0.1:1"
[origins.b]
url = "http://127.0.0.1:2"
[[behaviors]]
path_pattern = "/api/v1/*"
origin = "a"
[[behaviors]]
path_pattern = "/api/*"
origin = "b"
[[behaviors]]
path_pattern = "*"
origin = "a"
"#,
        );
        let pick = |p| s.behavior_for(p).map(|(i, _)| i);
        assert_eq!(pick("/api/v1/x"), Some(0));
        assert_eq!(pick("/api/v2/x"), Some(1));
        assert_eq!(pick("/other"), Some(2));
        assert_eq!(pick("/API/v1/x"), Some(2));
    }

    #[test]
    fn a_bad_ca_file_is_a_positioned_error() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        std::fs::write(dir.join("ca.pem"), "not a certificate").unwrap();
        let text = "[origins.a]\nurl = \"https://127.0.0.1:1\"\nca_file = \"ca.pem\"\n\
                    [[behaviors]]\npath_pattern = \"*\"\norigin = \"a\"\n";
        let config = verge_config::parse(text, &dir.join("v.toml")).unwrap();
        let e = Snapshot::build(Arc::new(config), 1, &Metrics::new().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("v.toml:1:1: origins.a.ca_file: ca_file holds no certificate"),
            "{e}"
        );
    }
}
