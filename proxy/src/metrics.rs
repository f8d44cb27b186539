//! verge-proxy's Prometheus metrics, named `verge_<area>_<what>_<unit>`, held in a registry per
//! proxy (not the global one) so several proxies in one test process never collide.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// All metrics of one proxy.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by behavior and status class (`2xx` … `5xx`).
    pub requests: IntCounterVec,
    /// Time from sending to the origin until its response header, by origin.
    pub origin_duration: HistogramVec,
    /// Origin failures, by origin and kind (`connect`, `timeout`, `dns`, `tls`, `other`).
    pub origin_errors: IntCounterVec,
    /// Failovers from a group's primary to its secondary, by group and reason.
    pub failovers: IntCounterVec,
    /// Requests a custom error response took over, by the status it replaced.
    pub custom_error_responses: IntCounterVec,
    /// Configuration reloads by result (`ok`, `failed`).
    pub reloads: IntCounterVec,
    /// Reloads whose changes to restart-only settings were not applied.
    pub restart_required: IntCounter,
    /// Function invocations by function and result (`Continue` or a CloudFront result type).
    pub function_invocations: IntCounterVec,
    /// Compute utilization per invocation (percent of the budget), by function.
    pub function_utilization: HistogramVec,
    /// Fast-tier workers retired at the hard ceiling (and replaced).
    pub retired_workers: IntGauge,
    /// Fast-tier context loads so far, by when (`warm`, `on_demand`, `spare`); read from the
    /// pool at scrape time.
    pub context_loads: prometheus::IntGaugeVec,
    /// The fast-tier worker generation serving new invocations.
    pub worker_generation: IntGauge,
    /// Collections the JS engine started by itself on fast-tier workers; read from the pool at
    /// scrape time.
    pub engine_collections: IntGauge,
    /// Edge-tier counters of the running configuration, by function and what
    /// (`cold_starts`, `cold_start_microseconds`, `timeouts`, `concurrency_refusals`, `parked`);
    /// read from the edge pool at scrape time.
    pub edge: prometheus::IntGaugeVec,
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(vec.clone()))?;
    Ok(vec)
}

impl Metrics {
    /// A fresh registry with every metric registered. Fails only on an invalid definition,
    /// which the unit test below rules out.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let origin_duration = HistogramVec::new(
            HistogramOpts::new(
                "verge_proxy_origin_duration_seconds",
                "Time from sending a request to an origin until its response header arrived.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["origin"],
        )?;
        registry.register(Box::new(origin_duration.clone()))?;
        let restart_required = IntCounter::new(
            "verge_config_restart_required_total",
            "Reloads that changed restart-only settings, which were not applied.",
        )?;
        registry.register(Box::new(restart_required.clone()))?;
        let function_utilization = HistogramVec::new(
            HistogramOpts::new(
                "verge_functions_compute_utilization_percent",
                "CPU used per invocation, percent of the function's budget (CloudFront's compute utilization).",
            )
            .buckets(vec![5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]),
            &["function"],
        )?;
        registry.register(Box::new(function_utilization.clone()))?;
        let retired_workers = IntGauge::new(
            "verge_functions_workers_retired",
            "Fast-tier workers retired at the hard ceiling and replaced.",
        )?;
        registry.register(Box::new(retired_workers.clone()))?;
        let context_loads = prometheus::IntGaugeVec::new(
            Opts::new(
                "verge_functions_context_loads",
                "Fast-tier JavaScript contexts loaded so far: warm (a new generation, before \
                 serving), on_demand (on a serving worker), spare (after an abort), confirm (to \
                 run a calm function's overrun again before it counts).",
            ),
            &["when"],
        )?;
        registry.register(Box::new(context_loads.clone()))?;
        let worker_generation = IntGauge::new(
            "verge_functions_worker_generation",
            "The fast-tier worker generation serving new invocations (one per reload).",
        )?;
        registry.register(Box::new(worker_generation.clone()))?;
        let engine_collections = IntGauge::new(
            "verge_functions_engine_collections",
            "Collections the JavaScript engine started by itself on fast-tier workers, outside \
             their own schedule between invocations: each may have landed inside an invocation \
             and been charged to its budget. Expected to stay 0.",
        )?;
        registry.register(Box::new(engine_collections.clone()))?;
        let edge = prometheus::IntGaugeVec::new(
            Opts::new(
                "verge_functions_edge",
                "Edge-tier (Lambda@Edge) instance counters since the running configuration was \
                 loaded: cold_starts, cold_start_microseconds (time spent loading at those \
                 starts), timeouts, concurrency_refusals, parked (instances parked for good at \
                 their hard memory ceiling); and at the scrape: instances (counting against \
                 the function's limit), idle (of those, waiting for work).",
            ),
            &["function", "what"],
        )?;
        registry.register(Box::new(edge.clone()))?;
        Ok(Metrics {
            edge,
            context_loads,
            worker_generation,
            engine_collections,
            function_invocations: counter_vec(
                &registry,
                "verge_functions_invocations_total",
                "Function invocations, by function and result.",
                &["function", "result"],
            )?,
            function_utilization,
            retired_workers,
            requests: counter_vec(
                &registry,
                "verge_proxy_requests_total",
                "Requests answered, by behavior and status class.",
                &["behavior", "status_class"],
            )?,
            origin_errors: counter_vec(
                &registry,
                "verge_proxy_origin_errors_total",
                "Failed origin attempts, by origin and kind.",
                &["origin", "kind"],
            )?,
            failovers: counter_vec(
                &registry,
                "verge_proxy_failovers_total",
                "Failovers from an origin group's primary to its secondary.",
                &["group", "reason"],
            )?,
            custom_error_responses: counter_vec(
                &registry,
                "verge_proxy_custom_error_responses_total",
                "Requests a custom error response took over (its page fetched or tried), by the status it replaced.",
                &["error_code"],
            )?,
            reloads: counter_vec(
                &registry,
                "verge_config_reloads_total",
                "Configuration reloads, by result.",
                &["result"],
            )?,
            origin_duration,
            restart_required,
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The status classes, in the order of [`class_index`].
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Request counters of one behavior, one per status class, resolved once per snapshot so the
/// request path does no label hashing.
#[derive(Debug, Clone)]
pub struct RequestCounters([IntCounter; 6]);

impl RequestCounters {
    /// Resolve the counters of `behavior`.
    pub fn new(metrics: &Metrics, behavior: &str) -> Self {
        RequestCounters(
            STATUS_CLASSES.map(|class| metrics.requests.with_label_values(&[behavior, class])),
        )
    }

    /// Count one answer with `status`.
    pub fn count(&self, status: u16) {
        self.0[class_index(status)].inc();
    }
}

/// The counters of the function at one hook of one behavior, for its usual outcome: `Continue`
/// and, for the fast tier, its compute utilization. Resolved once per snapshot like
/// [`RequestCounters`]: looking them up by label took two hashed lookups under a lock per
/// invocation (callgrind, viewer-request rewrite: ~730 instructions a request on the proxy
/// thread for counting, ~110 with these). Other results are rare and are looked up by label
/// when they happen.
#[derive(Debug, Clone)]
pub struct FunctionMeters {
    continued: IntCounter,
    /// `None` for Lambda@Edge, which has a timeout rather than a CPU budget.
    utilization: Option<prometheus::Histogram>,
}

/// The result label of an invocation that let the request or response go on.
pub const CONTINUE: &str = "Continue";

/// Whether `f`'s invocations record a compute utilization: CloudFront Functions do; Lambda@Edge
/// has a timeout rather than a CPU budget.
pub fn has_utilization(f: &verge_config::FunctionDef) -> bool {
    f.runtime != verge_config::Runtime::LambdaEdge
}

impl Metrics {
    /// Count an invocation of the function `name` by its result label (the path for results
    /// other than the usual one, which [`FunctionMeters`] counts), with its compute utilization
    /// where it has one.
    pub fn count_function(&self, name: &str, result: &str, utilization: Option<u32>) {
        self.function_invocations
            .with_label_values(&[name, result])
            .inc();
        if let Some(u) = utilization {
            self.function_utilization
                .with_label_values(&[name])
                .observe(f64::from(u));
        }
    }
}

impl FunctionMeters {
    /// Resolve the counters of the function `name`; `fast` for a CloudFront function.
    pub fn new(metrics: &Metrics, name: &str, fast: bool) -> Self {
        FunctionMeters {
            continued: metrics
                .function_invocations
                .with_label_values(&[name, CONTINUE]),
            utilization: fast.then(|| metrics.function_utilization.with_label_values(&[name])),
        }
    }

    /// Count one invocation that went on, with its compute utilization (fast tier).
    pub fn count_continue(&self, utilization: u32) {
        self.continued.inc();
        if let Some(histogram) = &self.utilization {
            histogram.observe(f64::from(utilization));
        }
    }
}

/// Index into [`STATUS_CLASSES`].
pub fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100) - 1,
        _ => 5,
    }
}

/// `2xx`, `4xx`, … for a status code.
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[class_index(status)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_cover_every_code() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(599), "5xx");
        assert_eq!(status_class(600), "other");
        assert_eq!(status_class(0), "other");
    }

    #[test]
    fn function_meters_count_into_the_labelled_series() {
        let m = Metrics::new().unwrap();
        let fast = FunctionMeters::new(&m, "ab", true);
        fast.count_continue(37);
        fast.count_continue(5);
        FunctionMeters::new(&m, "route", false).count_continue(0);
        let continued = |name: &str| {
            m.function_invocations
                .with_label_values(&[name, CONTINUE])
                .get()
        };
        assert_eq!((continued("ab"), continued("route")), (2, 1));
        let ab = m.function_utilization.with_label_values(&["ab"]);
        assert_eq!((ab.get_sample_count(), ab.get_sample_sum()), (2, 42.0));
        // The edge tier's function has no utilization series.
        let text = m.render();
        assert!(
            text.contains("verge_functions_compute_utilization_percent_count{function=\"ab\"} 2"),
            "{text}"
        );
        assert!(
            !text.contains("verge_functions_compute_utilization_percent_count{function=\"route\"}"),
            "{text}"
        );
    }

    #[test]
    fn every_metric_is_registered_and_rendered() {
        let m = Metrics::new().unwrap();
        m.requests.with_label_values(&["0", "2xx"]).inc();
        m.origin_duration.with_label_values(&["app"]).observe(0.01);
        m.origin_errors.with_label_values(&["app", "connect"]).inc();
        m.failovers.with_label_values(&["ha", "status"]).inc();
        m.custom_error_responses.with_label_values(&["404"]).inc();
        m.reloads.with_label_values(&["ok"]).inc();
        m.restart_required.inc();
        let text = m.render();
        for name in [
            "verge_proxy_requests_total",
            "verge_proxy_origin_duration_seconds_bucket",
            "verge_proxy_origin_errors_total",
            "verge_proxy_failovers_total",
            "verge_proxy_custom_error_responses_total",
            "verge_config_reloads_total",
            "verge_config_restart_required_total",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
