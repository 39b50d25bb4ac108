//! Prometheus metrics, served at `/metrics`: requests by route and status, their latency, bytes
//! in and out, requests in flight, and what storage holds. Routes are labelled by their pattern
//! (`/api/models/{ns}/{name}`), never by the path asked for, so strangers cannot grow the label
//! set; paths that match no route share the label `unmatched`.

use crate::db::{Db, StoredTotals};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Storage totals are aggregates over whole tables: computed at most this often.
const TOTALS_MAX_AGE: Duration = Duration::from_secs(30);

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    in_flight: IntGauge,
    stored_objects: IntGaugeVec,
    stored_bytes: IntGaugeVec,
    totals: Mutex<Option<(Instant, StoredTotals)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One request, counted as it starts; [`RequestTimer::finish`] records how it ended.
pub struct RequestTimer {
    started: Instant,
    in_flight: IntGauge,
}

impl RequestTimer {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("hub_http_requests_total", "HTTP requests answered, by method, route pattern and status"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("hub_http_request_duration_seconds", "Time until the answer's headers, by method and route pattern")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["method", "route"],
        )
        .expect("valid metric");
        let bytes_in =
            IntCounterVec::new(Opts::new("hub_http_request_bytes_total", "Request body bytes received, by route pattern"), &["route"])
                .expect("valid metric");
        let bytes_out =
            IntCounterVec::new(Opts::new("hub_http_response_bytes_total", "Response body bytes sent, by route pattern"), &["route"])
                .expect("valid metric");
        let in_flight = IntGauge::new("hub_http_requests_in_flight", "Requests being answered now").expect("valid metric");
        let stored_objects =
            IntGaugeVec::new(Opts::new("hub_storage_objects", "Objects in storage: kind=lfs (LFS objects) or kind=xet (xorbs)"), &["kind"])
                .expect("valid metric");
        let stored_bytes = IntGaugeVec::new(
            Opts::new("hub_storage_bytes", "Bytes in storage, each stored once: kind=lfs (LFS objects) or kind=xet (xorbs)"),
            &["kind"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(bytes_in.clone()),
            Box::new(bytes_out.clone()),
            Box::new(in_flight.clone()),
            Box::new(stored_objects.clone()),
            Box::new(stored_bytes.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics { registry, requests, duration, bytes_in, bytes_out, in_flight, stored_objects, stored_bytes, totals: Mutex::new(None) }
    }

    pub fn start(&self) -> RequestTimer {
        self.in_flight.inc();
        RequestTimer { started: Instant::now(), in_flight: self.in_flight.clone() }
    }

    /// The answer's headers are out: count it and its latency.
    pub fn answered(&self, timer: &RequestTimer, method: &str, route: &str, status: u16) {
        let method = known_method(method);
        self.requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.duration.with_label_values(&[method, route]).observe(timer.elapsed().as_secs_f64());
    }

    pub fn received(&self, route: &str, bytes: u64) {
        if bytes > 0 {
            self.bytes_in.with_label_values(&[route]).inc_by(bytes);
        }
    }

    pub fn sent(&self, route: &str, bytes: u64) {
        if bytes > 0 {
            self.bytes_out.with_label_values(&[route]).inc_by(bytes);
        }
    }

    /// The text exposition format, storage totals refreshed when older than 30 s.
    pub async fn render(&self, db: &Db) -> Result<String, sqlx::Error> {
        let cached = *self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let totals = match cached {
            Some((at, totals)) if at.elapsed() < TOTALS_MAX_AGE => totals,
            _ => {
                let totals = db.stored_totals().await?;
                *self.totals.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), totals));
                totals
            }
        };
        self.stored_objects.with_label_values(&["lfs"]).set(totals.lfs_objects);
        self.stored_bytes.with_label_values(&["lfs"]).set(totals.lfs_bytes);
        self.stored_objects.with_label_values(&["xet"]).set(totals.xet_xorbs);
        self.stored_bytes.with_label_values(&["xet"]).set(totals.xet_bytes);
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding into memory");
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Methods outside the standard set share one label (a stranger's `FOO` request must not add one).
fn known_method(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
        _ => "other",
    }
}
