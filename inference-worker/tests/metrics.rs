//! `/metrics` on the worker's router, with no model and no hub: the requests before it are
//! counted under their route pattern (or `unmatched`), and the inference series are there at zero.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use inference_worker::registry::{Registry, RegistryConfig};
use inference_worker::server::{router, Worker};
use tower::ServiceExt;

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_show_the_queue() {
    let registry = Registry::new(RegistryConfig {
        // Nothing here asks the hub for anything.
        hub: "http://127.0.0.1:9".into(),
        cache_dir: std::env::temp_dir().join("inference-worker-metrics-test"),
        device: candle_core::Device::Cpu,
        max_models: 1,
        max_model_bytes: 1 << 30,
        max_batch: 8,
        max_concurrency: 3,
        streams: inference_worker::pipelines::generate::StreamLimits { active: 4, queued: 4 },
    });
    let app = router(Arc::new(Worker::new(registry, Duration::from_secs(5))));

    assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
    assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
    assert_eq!(get(&app, "/no/such/path/a1b2c3").await.0, StatusCode::NOT_FOUND);
    // A route's pattern, not the owner and name asked for; GET on a POST route is 405.
    assert_eq!(get(&app, "/models/someone/something").await.0, StatusCode::METHOD_NOT_ALLOWED);

    let (status, text) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"inference_http_requests_total{route="/health",status="200"} 2"#,
        r#"inference_http_requests_total{route="unmatched",status="404"} 1"#,
        r#"inference_http_requests_total{route="/models/{owner}/{name}",status="405"} 1"#,
        r#"inference_http_request_duration_seconds_count{route="/health"} 2"#,
        "inference_compute_slots 3",
        "inference_compute_slots_busy 0",
        "inference_queue_depth 0",
        "inference_queue_wait_seconds_count 0",
        r#"inference_duration_seconds_count{task="text-generation"} 0"#,
        r#"inference_duration_seconds_count{task="feature-extraction"} 0"#,
        "inference_generated_tokens_total 0",
        "inference_models_loaded 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    for stranger in ["a1b2c3", "someone", "something"] {
        assert!(!text.contains(stranger), "a requested path became a label ({stranger}):\n{text}");
    }

    // /metrics itself is counted, once its answer is out.
    let (_, text) = get(&app, "/metrics").await;
    assert!(text.lines().any(|l| l == r#"inference_http_requests_total{route="/metrics",status="200"} 1"#), "{text}");
}
