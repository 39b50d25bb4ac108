//! One error type that speaks the Inference API's error format: a status and `{"error": …}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The request itself is wrong (shape, parameters, text the model can't take).
    #[error("{0}")]
    BadInput(String),
    /// The model exists but this worker can't run it (architecture, task, missing files).
    #[error("{0}")]
    Unsupported(String),
    #[error("model {0} not found (or you may not read it: pass a token with read access)")]
    ModelNotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("the model is busy: {0}")]
    Overloaded(String),
    #[error("inference took longer than {0} s and was stopped")]
    Timeout(f64),
    #[error("could not fetch the model from the hub: {0}")]
    Hub(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, WorkerError>;

impl WorkerError {
    pub fn status(&self) -> StatusCode {
        match self {
            WorkerError::BadInput(_) => StatusCode::BAD_REQUEST,
            WorkerError::Unsupported(_) => StatusCode::BAD_REQUEST,
            WorkerError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            WorkerError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WorkerError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            WorkerError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            WorkerError::Hub(_) => StatusCode::BAD_GATEWAY,
            WorkerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error_type` TGI puts next to `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            WorkerError::BadInput(_) => "validation",
            WorkerError::Unsupported(_) => "unsupported",
            WorkerError::ModelNotFound(_) => "not_found",
            WorkerError::Unauthorized(_) => "unauthorized",
            WorkerError::Overloaded(_) => "overloaded",
            WorkerError::Timeout(_) => "timeout",
            WorkerError::Hub(_) => "hub",
            WorkerError::Internal(_) => "internal",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string(), "error_type": self.kind() })
    }
}

impl From<candle_core::Error> for WorkerError {
    fn from(e: candle_core::Error) -> Self {
        // candle appends a backtrace when RUST_BACKTRACE is set: keep the message.
        WorkerError::Internal(e.to_string().lines().next().unwrap_or_default().to_string())
    }
}

impl From<hub_client::HubError> for WorkerError {
    fn from(e: hub_client::HubError) -> Self {
        use hub_client::HubError as H;
        match e {
            H::RepoNotFound { repo } => WorkerError::ModelNotFound(repo),
            H::RevisionNotFound { repo, revision } => WorkerError::ModelNotFound(format!("{repo}@{revision}")),
            H::Unauthorized { message } | H::Forbidden { message } => WorkerError::Unauthorized(message),
            other => WorkerError::Hub(other.to_string()),
        }
    }
}

impl IntoResponse for WorkerError {
    fn into_response(self) -> Response {
        if matches!(self, WorkerError::Internal(_)) {
            tracing::error!(error = %self, "inference failed");
        }
        let mut resp = (self.status(), Json(self.body())).into_response();
        if matches!(self, WorkerError::Overloaded(_)) {
            // Queues drain in a step or a few: clients that honour it come back soon.
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        resp
    }
}
