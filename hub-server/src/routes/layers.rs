//! What wraps every request: an access log line, security headers, a timeout on reads, a
//! panic catcher. (Request ids and sessions are set in `routes::router`.)

use crate::app::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Pages may load their own script and style sheet; cards' images may come from anywhere; no
/// page may be framed. Everything else (files, JSON) may run nothing at all.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https: http:; \
                           object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const FILE_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// Sets `nosniff` everywhere (user files are served from the hub's own origin), and a content
/// policy and frame refusal fitting the answer.
pub async fn security_headers(mut resp: Response) -> Response {
    let html = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(if html { PAGE_POLICY } else { FILE_POLICY }));
    resp
}

/// Reads (GET, HEAD) must start answering within the configured time; a handler stuck longer
/// answers 503 instead of holding the client (streaming a long body afterwards is fine).
/// Writes are bounded by the body idle timeout instead: they may legitimately take hours.
pub async fn read_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = std::time::Duration::from_secs(state.settings.request_timeout_secs);
    if !(req.method() == Method::GET || req.method() == Method::HEAD) || limit.is_zero() {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the hub took too long to answer; retry").into_response(),
    }
}

/// While the database is known to be down, requests that need it answer 503 at once instead of
/// queueing for a connection (health checks and static assets still answer).
pub async fn database_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" || path == "/metrics" || path.starts_with("/static/") {
        return next.run(req).await;
    }
    if state.db.is_down() {
        return ApiError::unavailable("the database", "the last ping failed").into_response();
    }
    // A request still working towards its answer when the database goes away (most likely
    // waiting for a connection, which the pool would retry for HUB_DB_ACQUIRE_TIMEOUT_SECS)
    // answers 503 at once. Once its answer has started, it streams on: bodies do not need the
    // database. Work it had begun that cannot be undone (a ref moved) is reconciled as after a
    // crash: the repo's head is read from git again when the database returns.
    tokio::select! {
        resp = next.run(req) => resp,
        () = state.db.went_down() => ApiError::unavailable("the database", "it stopped answering during the request").into_response(),
    }
}

/// One INFO line per request, when its answer has been sent (or abandoned): method, path,
/// status, bytes in and out, duration and request id.
pub async fn access_log(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let timer = state.metrics.start();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // The route pattern is known only once the router has matched: `tag_route` fills this in.
    let route = RouteSlot::default();
    req.extensions_mut().insert(route.clone());
    let received = Arc::new(AtomicU64::new(0));
    let req = req.map(|body| Body::new(CountedBody { inner: body, received: received.clone() }));
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let route = route.0.get().cloned().unwrap_or_else(|| crate::metrics::UNMATCHED.to_string());
    state.metrics.answered(&timer, method.as_str(), &route, status);
    // A write makes the read caches stale on every replica (read_cache.rs): once when the
    // handler answers, before the client can see the answer, and again when the body ends (a
    // git push moves refs and records them while its answer streams). Refusals of credentials
    // come before any work, so strangers' refused writes do not empty everyone's caches.
    let wrote = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) && !matches!(status, 401 | 403);
    if wrote {
        // A write to the shared epoch file, off the async threads: under heavy disk writes the
        // kernel may pause any writer (dirty-page throttling), and /health must not wait on it.
        let bumping = state.clone();
        let _ = tokio::task::spawn_blocking(move || bumping.cache.epoch.bump()).await;
    }
    let (parts, body) = resp.into_parts();
    let finished = http_body::Body::is_end_stream(&body);
    let line = AccessLine { method, path, route, id, status, received, bytes_out: 0, finished, wrote, timer, state };
    Response::from_parts(parts, Body::new(LoggedBody { inner: body, line }))
}

/// Where `tag_route` leaves the pattern of the route a request matched, for the access log and
/// the metrics (the request's extensions reach the handler; the response may be rebuilt on its
/// way out).
#[derive(Clone, Default)]
pub struct RouteSlot(Arc<std::sync::OnceLock<String>>);

/// Applied to every route (`Router::route_layer`): records the matched pattern.
pub async fn tag_route(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(matched)) = (req.extensions().get::<RouteSlot>(), req.extensions().get::<axum::extract::MatchedPath>()) {
        let _ = slot.0.set(matched.as_str().to_string());
    }
    next.run(req).await
}

struct AccessLine {
    method: Method,
    path: String,
    route: String,
    id: String,
    status: u16,
    received: Arc<AtomicU64>,
    bytes_out: u64,
    finished: bool,
    wrote: bool,
    timer: crate::metrics::RequestTimer,
    state: AppState,
}

impl Drop for AccessLine {
    fn drop(&mut self) {
        if self.wrote {
            let bumping = self.state.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || bumping.cache.epoch.bump())),
                Err(_) => bumping.cache.epoch.bump(),
            }
        }
        let bytes_in = self.received.load(Ordering::Relaxed);
        self.state.metrics.sent(&self.route, self.bytes_out);
        self.state.metrics.received(&self.route, bytes_in);
        tracing::info!(
            target: "hub_server::access",
            method = %self.method,
            path = %self.path,
            route = %self.route,
            status = self.status,
            bytes_in,
            bytes_out = self.bytes_out,
            ms = self.timer.elapsed().as_millis() as u64,
            complete = self.finished,
            request_id = %self.id,
            "request"
        );
    }
}

/// A request body that counts what the handler reads of it.
struct CountedBody {
    inner: Body,
    received: Arc<AtomicU64>,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(data) = frame.data_ref() {
                self.received.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts what it sends and logs the request's line when it is done.
struct LoggedBody {
    inner: Body,
    line: AccessLine,
}

impl http_body::Body for LoggedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.line.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.line.finished = true,
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Request bodies read (and dropped) after a refusal, at most: a refusal sent with its body
/// unread makes hyper close the connection, and pooled clients (httpx, git) then fail their next
/// request on it. Larger unread bodies still close the connection.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Refusals of writes (auth, validation) often come before the handler reads the body; this
/// reads what it left, within limits, before the answer goes out.
pub async fn drain_refused(req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(body)));
    let req = Request::from_parts(parts, Body::new(SharedBody { slot: slot.clone() }));
    let resp = next.run(req).await;
    if resp.status().is_client_error() || resp.status().is_server_error() {
        let left = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(body) = left {
            let _ = tokio::time::timeout(DRAIN_TIME, axum::body::to_bytes(body, DRAIN_LIMIT)).await;
        }
    }
    resp
}

/// The request body as the handler sees it, while the original stays reachable for draining.
struct SharedBody {
    slot: std::sync::Arc<std::sync::Mutex<Option<Body>>>,
}

impl http_body::Body for SharedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

/// Request ids: a random prefix per process and a counter, shaped like a UUID. uuid's v4 asks
/// the kernel for randomness on every request (~1% of the read path's CPU); this does not, and
/// ids stay distinct across replicas and restarts.
#[derive(Clone)]
pub struct RequestIds {
    prefix: u64,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        RequestIds { prefix: rand::random(), next: Arc::new(AtomicU64::new(0)) }
    }
}

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = uuid::Uuid::from_u64_pair(self.prefix, n).hyphenated().to_string();
        HeaderValue::from_str(&id).ok().map(tower_http::request_id::RequestId::new)
    }
}

/// A panic in a handler answers a plain 500 (logged), and the process keeps serving.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err.downcast_ref::<String>().map(String::as_str).or_else(|| err.downcast_ref::<&str>().copied()).unwrap_or("(no message)");
    ApiError::internal(format!("a handler panicked: {what}")).into_response()
}
