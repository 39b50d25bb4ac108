//! The one error type: it speaks the Hub's error protocol (status, JSON body, `X-Error-Code`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hub_client::types::{ErrorBody, Message};

pub type ApiResult<T> = Result<T, ApiError>;

/// Machine codes clients branch on (huggingface_hub's `hf_raise_for_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    RepoNotFound,
    RevisionNotFound,
    EntryNotFound,
}

impl ErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RepoNotFound => "RepoNotFound",
            ErrorCode::RevisionNotFound => "RevisionNotFound",
            ErrorCode::EntryNotFound => "EntryNotFound",
        }
    }
}

/// What an error's body says beyond `error`.
#[derive(Debug)]
pub enum Detail {
    /// The existing repo's URL, on create's 409 (create_repo(exist_ok) reads it).
    Url(String),
    /// What validate-yaml rejects, listed as well as in `error`.
    YamlErrors(Vec<Message>),
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Option<ErrorCode>,
    pub message: String,
    /// `X-Repo-Commit` on EntryNotFound, so clients can negative-cache the path.
    pub repo_commit: Option<String>,
    /// More for the body than the message (boxed: errors travel in every `Result`).
    pub detail: Option<Box<Detail>>,
    /// Extra response headers (e.g. `WWW-Authenticate`).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, code: None, message: message.into(), repo_commit: None, detail: None, headers: Vec::new() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }
    /// A repo that does not exist, or that the caller may not see: 401 for anonymous callers,
    /// 404 for authenticated ones, so a private repo is indistinguishable from a missing one.
    pub fn repo_not_found(authenticated: bool) -> Self {
        let status = if authenticated { StatusCode::NOT_FOUND } else { StatusCode::UNAUTHORIZED };
        let mut e = Self::new(status, "Repository not found");
        e.code = Some(ErrorCode::RepoNotFound);
        e
    }
    pub fn revision_not_found(rev: &str) -> Self {
        let mut e = Self::new(StatusCode::NOT_FOUND, format!("Invalid rev id: {rev}"));
        e.code = Some(ErrorCode::RevisionNotFound);
        e
    }
    pub fn entry_not_found(path: &str, commit: &str) -> Self {
        let mut e = Self::new(StatusCode::NOT_FOUND, format!("Entry not found: {path}"));
        e.code = Some(ErrorCode::EntryNotFound);
        e.repo_commit = Some(commit.to_string());
        e
    }
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
    pub fn with_url(mut self, url: String) -> Self {
        self.detail = Some(Box::new(Detail::Url(url)));
        self
    }
    pub fn with_yaml_errors(mut self, errors: Vec<Message>) -> Self {
        self.detail = Some(Box::new(Detail::YamlErrors(errors)));
        self
    }
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(self.message.clone());
        match self.detail.map(|d| *d) {
            Some(Detail::Url(url)) => body.url = Some(url),
            Some(Detail::YamlErrors(errors)) => {
                body.errors = Some(errors);
                body.warnings = Some(Vec::new());
            }
            None => {}
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        // The specific code clients branch on, else one named after the status (`BadRequest`).
        let code = self.code.map(|c| c.as_str().to_string()).unwrap_or_else(|| status_code_name(self.status));
        if let Ok(v) = HeaderValue::from_str(&code) {
            h.insert("x-error-code", v);
        }
        // Header values must be visible ASCII; fall back to a generic message otherwise.
        let msg: String = self.message.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).collect();
        if let Ok(v) = HeaderValue::from_str(&msg) {
            h.insert("x-error-message", v);
        }
        if let Some(commit) = self.repo_commit.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert("x-repo-commit", commit);
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(name, v);
            }
        }
        resp
    }
}

/// `Payload Too Large` → `PayloadTooLarge`.
pub fn status_code_name(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("Error").split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect()
}

/// Turns the plain-text errors axum answers by itself (a path that does not parse, a method a
/// route does not take, a body over a limit) into the Hub's JSON errors; HTML error pages of the
/// web UI and successful answers pass unchanged.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || resp.headers().contains_key("x-error-code") {
        return resp;
    }
    let kind = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if !(kind.is_empty() || kind.starts_with("text/plain")) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("Error").to_string() } else { text };
    let mut e = ApiError::new(status, message);
    for (name, value) in parts.headers.iter() {
        // Keep what the answer said besides its body (Allow on a 405, a challenge on a 401).
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            if let Ok(v) = value.to_str() {
                e = e.with_header(name.clone(), v);
            }
        }
    }
    e.into_response()
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self { ApiError::internal(e) }
        }
    )*};
}
internal_from!(git2::Error, std::io::Error, tokio::task::JoinError, anyhow::Error);

impl ApiError {
    /// A dependency (object storage, the database) does not answer: retry later. Logged once.
    pub fn unavailable(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %err, "{what} unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what} is unavailable right now; retry in a few seconds"))
            .with_header(header::RETRY_AFTER, "5")
    }
}

impl From<object_store::Error> for ApiError {
    fn from(e: object_store::Error) -> Self {
        match e {
            // Metadata names an object the store does not have: a hub fault, not the client's.
            object_store::Error::NotFound { .. } => ApiError::internal(e),
            // Anything else is the store failing to answer (down, timing out, refusing).
            other => ApiError::unavailable("object storage", other),
        }
    }
}

impl From<crate::storage::PutError> for ApiError {
    fn from(e: crate::storage::PutError) -> Self {
        match e {
            crate::storage::PutError::Store(e) => ApiError::from(e),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                ApiError::unavailable("the database", e)
            }
            // Postgres shutting down or a lost connection (SQLSTATE classes 57P and 08).
            sqlx::Error::Database(ref d) if d.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) => {
                ApiError::unavailable("the database", e)
            }
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_names_are_pascal_case() {
        assert_eq!(super::status_code_name(axum::http::StatusCode::PAYLOAD_TOO_LARGE), "PayloadTooLarge");
        assert_eq!(super::status_code_name(axum::http::StatusCode::RANGE_NOT_SATISFIABLE), "RangeNotSatisfiable");
        assert_eq!(super::status_code_name(axum::http::StatusCode::BAD_REQUEST), "BadRequest");
    }
}
