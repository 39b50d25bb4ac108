//! The inference-worker(s) the hub forwards Inference API requests to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};

/// The commit the hub resolved, so the worker runs exactly what the caller saw.
pub const REVISION_HEADER: &str = "x-inference-revision";

pub struct Workers {
    urls: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
}

/// One request to forward; the body is small (text) and kept so another worker can be tried.
pub struct Forward {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub authorization: Option<String>,
    pub revision: String,
    pub request_id: Option<HeaderValue>,
}

impl Workers {
    pub fn new(urls: Vec<String>) -> anyhow::Result<Workers> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Workers { urls, next: AtomicUsize::new(0), http })
    }

    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Sends the request to the next worker in turn, moving on to the others only when one
    /// can't be reached; the worker's answer (a stream for SSE) is passed through.
    pub async fn forward(&self, f: Forward) -> ApiResult<Response> {
        if self.urls.is_empty() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "inference is not enabled on this hub: start an inference-worker and set HUB_INFERENCE_URL",
            ));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_error = String::new();
        for i in 0..self.urls.len() {
            let url = format!("{}{}", self.urls[(start + i) % self.urls.len()], f.path);
            let mut req = self.http.request(f.method.clone(), &url).header(REVISION_HEADER, &f.revision).body(f.body.clone());
            if let Some(ct) = &f.content_type {
                req = req.header(header::CONTENT_TYPE, ct);
            }
            if let Some(auth) = &f.authorization {
                req = req.header(header::AUTHORIZATION, auth);
            }
            if let Some(id) = &f.request_id {
                req = req.header("x-request-id", id);
            }
            match req.send().await {
                Ok(resp) => return Ok(passthrough(resp)),
                Err(e) if e.is_connect() => {
                    tracing::warn!(worker = %url, error = %e, "inference worker unreachable; trying the next one");
                    last_error = e.to_string();
                }
                Err(e) => return Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("the inference worker failed: {e}"))),
            }
        }
        Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("no inference worker could be reached ({last_error})")))
    }
}

fn passthrough(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = resp.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let streaming = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
    if streaming {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Proxies in front of the hub must not hold tokens back.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    let mut out = Response::new(Body::from_stream(resp.bytes_stream()));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}
