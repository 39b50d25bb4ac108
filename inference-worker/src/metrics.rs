//! Prometheus metrics, served at `/metrics`: requests by route and status and their latency, the
//! queue for compute slots, inference latency by task, generated tokens and loaded models.
//! Labels come from fixed sets only — route patterns (`/models/{owner}/{name}`, never the path
//! asked for; paths that match no route share `unmatched`) and the worker's own task names — so
//! requests cannot grow the label set.

use std::time::Duration;

use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, TextEncoder};

use crate::limits::ComputeSlots;
use crate::pipelines::generate::StreamGauges;
use crate::pipelines::Task;
use crate::registry::Registry;

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// From a millisecond (health, info) to past the default 120 s timeout (long generations).
const BUCKETS: [f64; 16] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// What [`ComputeSlots`] reports about itself; it keeps these up to date, [`Metrics`] exposes them.
#[derive(Clone)]
pub struct SlotMetrics {
    /// Slots there are (`--max-concurrency`).
    pub slots: IntGauge,
    /// Threads waiting for a slot now: the inference queue. Encoder requests wait first in their
    /// model's batch queue (`pipelines::batcher`), whose one thread then counts here.
    pub waiting: IntGauge,
    /// Slots held now.
    pub busy: IntGauge,
    /// Time from asking for a slot to holding it.
    pub wait: Histogram,
}

impl SlotMetrics {
    pub fn new(slots: usize) -> SlotMetrics {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let m = SlotMetrics {
            slots: gauge("inference_compute_slots", "Forward passes or generation steps that may run at once (--max-concurrency)"),
            waiting: gauge("inference_queue_depth", "Forward passes or generation steps waiting for a compute slot now"),
            busy: gauge("inference_compute_slots_busy", "Compute slots held now"),
            wait: Histogram::with_opts(
                HistogramOpts::new("inference_queue_wait_seconds", "Time a forward pass or generation step waited for a compute slot")
                    .buckets(BUCKETS.to_vec()),
            )
            .expect("valid metric"),
        };
        m.slots.set(slots as i64);
        m
    }
}

pub struct Metrics {
    registry: prometheus::Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    inference: HistogramVec,
    tokens: IntCounter,
    models_loaded: IntGauge,
}

impl Metrics {
    /// The worker's metrics, with the gauges `compute` keeps.
    pub fn new(compute: &ComputeSlots, streams: &StreamGauges) -> Metrics {
        let requests = IntCounterVec::new(
            Opts::new("inference_http_requests_total", "HTTP requests answered, by route pattern and status"),
            &["route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("inference_http_request_duration_seconds", "Time until the answer's headers, by route pattern")
                .buckets(BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let inference = HistogramVec::new(
            HistogramOpts::new(
                "inference_duration_seconds",
                "Time running a successful inference by task, model loading excluded (whole generation, streams included)",
            )
            .buckets(BUCKETS.to_vec()),
            &["task"],
        )
        .expect("valid metric");
        let tokens = IntCounter::new("inference_generated_tokens_total", "Tokens produced by completed text-generation requests")
            .expect("valid metric");
        let models_loaded = IntGauge::new("inference_models_loaded", "Models loaded in memory now").expect("valid metric");
        // Every task shows up from the start, at zero, so dashboards need not wait for traffic.
        for task in Task::ALL {
            inference.with_label_values(&[task.name()]);
        }
        let slots = compute.metrics();
        let registry = prometheus::Registry::new();
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(inference.clone()),
            Box::new(tokens.clone()),
            Box::new(models_loaded.clone()),
            Box::new(slots.slots.clone()),
            Box::new(slots.waiting.clone()),
            Box::new(slots.busy.clone()),
            Box::new(slots.wait.clone()),
            Box::new(streams.active.clone()),
            Box::new(streams.queued.clone()),
            Box::new(streams.tokens.clone()),
            Box::new(streams.steps.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics { registry, requests, duration, inference, tokens, models_loaded }
    }

    /// An answer's headers are out: count it and its latency. `route` is a route pattern or
    /// [`UNMATCHED`].
    pub fn answered(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests.with_label_values(&[route, &status.to_string()]).inc();
        self.duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    /// A `task` inference succeeded after `elapsed`.
    pub fn inferred(&self, task: Task, elapsed: Duration) {
        self.inference.with_label_values(&[task.name()]).observe(elapsed.as_secs_f64());
    }

    /// A text generation finished with `tokens` tokens.
    pub fn generated(&self, tokens: usize) {
        self.tokens.inc_by(tokens as u64);
    }

    /// The text exposition format.
    pub fn render(&self, models: &Registry) -> String {
        self.models_loaded.set(models.loaded_count() as i64);
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding into memory");
        String::from_utf8_lossy(&out).into_owned()
    }
}
