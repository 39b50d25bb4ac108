//! The Inference API on the hub: `POST /models/{ns}/{name}` (and `/pipeline/{task}`), with the
//! caller's read access checked here, then forwarded to an inference-worker.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::inference_grant;
use crate::error::{ApiError, ApiResult};
use crate::inference::Forward;
use crate::names::{RepoName, RepoType};

/// Inference inputs are text; anything larger is a mistake.
const MAX_BODY: usize = 16 * 1024 * 1024;

pub async fn infer(State(state): State<AppState>, Path((ns, name)): Path<(String, String)>, req: Request) -> Response {
    forward(&state, &ns, &name, "", req).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn infer_task(State(state): State<AppState>, Path((ns, name, task)): Path<(String, String, String)>, req: Request) -> Response {
    let suffix = format!("/pipeline/{}", percent_encoding::utf8_percent_encode(&task, percent_encoding::NON_ALPHANUMERIC));
    forward(&state, &ns, &name, &suffix, req).await.unwrap_or_else(IntoResponse::into_response)
}

/// `InferenceClient.get_endpoint_info()`.
pub async fn info(State(state): State<AppState>, Path((ns, name)): Path<(String, String)>, req: Request) -> Response {
    forward(&state, &ns, &name, "/info", req).await.unwrap_or_else(IntoResponse::into_response)
}

/// `InferenceClient.health_check()`: 200 once the worker has the model loaded.
pub async fn health(State(state): State<AppState>, Path((ns, name)): Path<(String, String)>, req: Request) -> Response {
    forward(&state, &ns, &name, "/health", req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn forward(state: &AppState, ns: &str, name: &str, suffix: &str, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    // Read the (small) body before any refusal: answering with it unread makes hyper close the
    // connection, and a client reusing it (huggingface_hub's pooled httpx) sees "Server
    // disconnected without sending a response" on its next call.
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("inference requests are limited to {} MiB", MAX_BODY >> 20)))?;
    let session = parts.extensions.get::<tower_sessions::Session>().cloned();
    // A token if sent, else the web session's user (the model page's widget).
    let (caller, _) = super::web::session::context(state, &parts.headers, session.as_ref()).await?;
    let repo = RepoName::new(RepoType::Model, ns, name)?;
    let row = crate::repos::find_readable(state, &caller, &repo, &parts.uri).await?;
    let revision =
        row.sha.clone().ok_or_else(|| ApiError::bad_request(format!("{} has no files yet: push a model first", row.name.id())))?;
    // The worker reads a private model with a short-lived read-only grant, never the user's token.
    let authorization = match (&caller.user, row.private) {
        (Some(user), true) => Some(format!("Bearer {}", inference_grant(&state.secret, user.account.id, &row.id, &revision))),
        _ => None,
    };
    state
        .inference
        .forward(Forward {
            method: parts.method.clone(),
            path: format!("/models/{}/{}{suffix}", row.name.namespace, row.name.name),
            body,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            authorization,
            revision,
            request_id: parts.headers.get("x-request-id").cloned(),
        })
        .await
}
