//! The HTTP face: the Inference API routes the hub forwards to, plus `/info`, `/health` and
//! `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::error::{Result, WorkerError};
use crate::metrics::Metrics;
use crate::pipelines::{self, generate, Kind, LoadedModel, Task};
use crate::registry::{Registry, Resolved};

/// The hub names the commit it resolved so the worker runs exactly what the caller saw.
pub const REVISION_HEADER: &str = "x-inference-revision";

pub struct Worker {
    pub registry: Registry,
    pub timeout: Duration,
    pub metrics: Metrics,
}

impl Worker {
    pub fn new(registry: Registry, timeout: Duration) -> Worker {
        let metrics = Metrics::new(&registry.compute, &registry.stream_gauges);
        Worker { registry, timeout, metrics }
    }

    /// A text generation completed: its latency and tokens (for streams, once the last is out).
    fn finished_generation(&self, started: Instant, outcome: &generate::Outcome) {
        self.metrics.inferred(Task::TextGeneration, started.elapsed());
        self.metrics.generated(outcome.tokens.len());
    }
}

pub fn router(worker: Arc<Worker>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/info", get(worker_info))
        .route("/metrics", get(prometheus_metrics))
        .route("/models/{owner}/{name}", post(infer))
        .route("/models/{owner}/{name}/pipeline/{task}", post(infer_task))
        .route("/models/{owner}/{name}/info", get(model_info))
        .route("/models/{owner}/{name}/health", get(model_health))
        .layer(axum::middleware::from_fn_with_state(worker.clone(), access_log))
        .with_state(worker)
}

/// The hub's request id (`X-Request-Id`) on every log line of a request and on its answer, and
/// one INFO line per request, so a hub request can be followed into the worker; and the request
/// counted in the metrics under its route pattern.
async fn access_log(State(w): State<Arc<Worker>>, req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let id = req.headers().get("x-request-id").cloned();
    let shown = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let route = req.extensions().get::<MatchedPath>().map_or(crate::metrics::UNMATCHED, MatchedPath::as_str).to_string();
    let span = tracing::info_span!("request", id = %shown, method = %method, path = %path);
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    w.metrics.answered(&route, resp.status().as_u16(), started.elapsed());
    let _entered = span.enter();
    tracing::info!(status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, request_id = %shown, "request");
    if let Some(id) = id {
        resp.headers_mut().insert("x-request-id", id);
    }
    resp
}

async fn worker_info(State(w): State<Arc<Worker>>) -> Json<Value> {
    Json(json!({
        "router": "inference-worker",
        "version": env!("CARGO_PKG_VERSION"),
        "device": format!("{:?}", w.registry.device),
        "tasks": Task::ALL.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "max_models": w.registry.max_models,
        "loaded": w.registry.loaded(),
    }))
}

/// `GET /metrics`: Prometheus text format (see `crate::metrics`). Unauthenticated, like the
/// rest of the worker: it must sit on a private address, and its labels name no model.
async fn prometheus_metrics(State(w): State<Arc<Worker>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], w.metrics.render(&w.registry)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?.trim();
    (!t.is_empty()).then(|| t.to_string())
}

struct Target {
    id: String,
    token: Option<String>,
    resolved: Resolved,
}

async fn target(w: &Worker, owner: &str, name: &str, headers: &HeaderMap) -> Result<Target> {
    let id = format!("{owner}/{name}");
    let token = bearer(headers);
    let revision = headers.get(REVISION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("main").to_string();
    let resolved = w.registry.resolve(&id, &revision, token.as_deref()).await?;
    Ok(Target { id, token, resolved })
}

async fn model_info(State(w): State<Arc<Worker>>, Path((owner, name)): Path<(String, String)>, headers: HeaderMap) -> Result<Json<Value>> {
    let t = target(&w, &owner, &name, &headers).await?;
    Ok(Json(json!({
        "model_id": t.id,
        "model_sha": t.resolved.sha,
        "model_pipeline_tag": t.resolved.pipeline_tag,
        "model_dtype": "float32",
        "model_device_type": format!("{:?}", w.registry.device).to_lowercase(),
        "router": "inference-worker",
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// Ready means loaded: this warms the model.
async fn model_health(
    State(w): State<Arc<Worker>>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let t = target(&w, &owner, &name, &headers).await?;
    w.registry.get(&t.id, &t.resolved, None, t.token.as_deref()).await?;
    Ok(Json(json!({ "status": "ok" })))
}

async fn infer(
    State(w): State<Arc<Worker>>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    run(w, owner, name, None, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn infer_task(
    State(w): State<Arc<Worker>>,
    Path((owner, name, task)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(task) = Task::parse(&task) else {
        return WorkerError::BadInput(format!("unknown task {task:?}; supported: {}", Task::ALL.map(Task::name).join(", ")))
            .into_response();
    };
    run(w, owner, name, Some(task), headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn run(
    w: Arc<Worker>,
    owner: String,
    name: String,
    task: Option<Task>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| WorkerError::BadInput(format!("the body must be JSON: {e}")))?;
    if body.get("inputs").is_none_or(Value::is_null) {
        return Err(WorkerError::BadInput("the body needs \"inputs\"".into()));
    }
    let t = target(&w, &owner, &name, &headers).await?;
    // A `/pipeline/sentence-similarity` request runs on the same embedding model.
    let model = w.registry.get(&t.id, &t.resolved, task.map(load_task), t.token.as_deref()).await?;
    let task = match task {
        Some(task) => task,
        None if matches!(model.kind, Kind::Embedder { .. }) => pipelines::embed::requested_task(&body),
        None => model.task,
    };
    if !model.serves(task) {
        return Err(WorkerError::BadInput(format!("{} is a {} model; it can't do {}", model.id, model.task.name(), task.name())));
    }
    let timeout = w.timeout;
    let started = Instant::now();
    let value = match task {
        Task::FeatureExtraction => pipelines::embed::feature_extraction(&model, &body, timeout).await?,
        Task::SentenceSimilarity => pipelines::embed::sentence_similarity(&model, &body, timeout).await?,
        Task::TextClassification => pipelines::classify::text_classification(&model, &body, timeout).await?,
        Task::TokenClassification => pipelines::tokens::token_classification(&model, &body, timeout).await?,
        Task::FillMask => pipelines::fill_mask::fill_mask(&model, &body, timeout).await?,
        Task::TextGeneration => return text_generation(&w, model, &body).await,
        Task::Summarization | Task::Translation | Task::Text2TextGeneration => {
            pipelines::text2text::run(model.clone(), task, &body, w.registry.compute.clone(), timeout).await?
        }
    };
    w.metrics.inferred(task, started.elapsed());
    Ok(Json(value).into_response())
}

/// Requests share one loaded model whichever task of its kind they name.
fn load_task(task: Task) -> Task {
    task.kind()
}

async fn text_generation(w: &Arc<Worker>, model: Arc<LoadedModel>, body: &Value) -> Result<Response> {
    let prompt = body["inputs"].as_str().ok_or_else(|| WorkerError::BadInput("inputs must be a string".into()))?.to_string();
    let params = generate::Params::parse(body)?;
    let started = Instant::now();
    let Kind::Generator { streams } = &model.kind else {
        return Err(WorkerError::Internal("not a text-generation model".into()));
    };
    // Both shapes answer from the model's decode loop; a client that leaves drops `events`,
    // which takes its sequence out of the batch at the next step.
    // The sequence takes the parameters; the answer's shape needs them too.
    let shape = params.clone();
    let seq = generate::Sequence::new(&model, params, &prompt, started + w.timeout, w.timeout.as_secs_f64())?;
    let mut events = streams.submit(seq)?;
    if !shape.stream {
        loop {
            match events.recv().await {
                Some(generate::Event::Token(_)) => continue,
                Some(generate::Event::Done(result)) => {
                    let outcome = (*result)?;
                    w.finished_generation(started, &outcome);
                    return Ok(Json(outcome.response(&shape)).into_response());
                }
                None => return Err(WorkerError::Internal("the model's decode thread stopped".into())),
            }
        }
    }
    let worker = w.clone();
    let mut index = 0usize;
    let mut done = false;
    let events = futures::stream::poll_fn(move |cx| {
        if done {
            return std::task::Poll::Ready(None);
        }
        let event = match std::task::ready!(events.poll_recv(cx)) {
            Some(generate::Event::Token(token)) => {
                index += 1;
                json!({ "index": index, "token": token.json(), "generated_text": null, "details": null, "top_tokens": null })
            }
            Some(generate::Event::Done(result)) => {
                done = true;
                match *result {
                    Ok(outcome) => {
                        worker.finished_generation(started, &outcome);
                        json!({
                            "index": index + 1,
                            "token": outcome.tokens.last().map(generate::TokenOut::json),
                            "generated_text": outcome.full_text(&shape),
                            "details": if shape.details { outcome.details(false) } else { Value::Null },
                            "top_tokens": null,
                        })
                    }
                    Err(e) => e.body(),
                }
            }
            None => {
                done = true;
                WorkerError::Internal("the model's decode thread stopped".into()).body()
            }
        };
        std::task::Poll::Ready(Some(event))
    })
    .map(|v| Ok::<_, Infallible>(Event::default().data(v.to_string())));
    Ok(Sse::new(events).into_response())
}
