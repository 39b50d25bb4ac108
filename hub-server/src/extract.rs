//! Extractors that validate once and reject with the Hub's JSON errors (axum's own rejections
//! are plain text, which the clients cannot parse).

use crate::app::AppState;
use crate::error::ApiError;
use crate::names::RepoName;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Largest JSON body of an API call (file contents go through LFS or the NDJSON commit).
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// A JSON body; malformed input is a 400 that says what is wrong.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|_| ApiError::payload_too_large(format!("request body exceeds {MAX_JSON_BODY} bytes")))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map(ApiJson).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// The raw query string as (key, value) pairs, keeping repeated keys (`expand=a&expand=b`).
#[derive(Debug, Default, Clone)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    pub fn parse(query: Option<&str>) -> QueryPairs {
        QueryPairs(form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect())
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
    /// Booleans arrive as true/false or 1/0, in any case.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
    }
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("query parameter {key} must be a non-negative integer"))))
            .transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(QueryPairs::parse(parts.uri.query()))
    }
}

/// `/api/{t}/{ns}/{name}/…`: the repo named by the route, validated, plus the other
/// decoded path parameters (`rev`, `path`, `branch`).
#[derive(Debug, Clone)]
pub struct RepoPath {
    pub name: RepoName,
    pub params: HashMap<String, String>,
    pub uri: Uri,
}

impl RepoPath {
    pub fn param(&self, key: &str) -> &str {
        self.params.get(key).map(String::as_str).unwrap_or("")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RepoPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
        let repo_type = crate::names::repo_type_from_plural(params.get("t").map(String::as_str).unwrap_or(""))
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Not found"))?;
        let ns = params.get("ns").map(String::as_str).unwrap_or("");
        let name = params.get("name").map(String::as_str).unwrap_or("");
        // A name that breaks the naming rules cannot exist.
        let name = RepoName::new(repo_type, ns, name).map_err(|_| ApiError::repo_not_found(true))?;
        Ok(RepoPath { name, params, uri: parts.uri.clone() })
    }
}

/// A repo named by a web, resolve or git path: `/{ns}/{name}/…` for models, `/datasets/…` and
/// `/spaces/…` for the others (a repo's URL is its web page); git's `.git` suffix on the name is
/// dropped. The other path parameters (`rev`, `path`, `sha`) come decoded.
#[derive(Debug, Clone)]
pub struct RepoRef {
    pub name: RepoName,
    pub params: HashMap<String, String>,
    pub uri: Uri,
}

impl RepoRef {
    pub fn param(&self, key: &str) -> &str {
        self.params.get(key).map(String::as_str).unwrap_or("")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RepoRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
        // The URI as the client sent it: routes nested under /datasets and /spaces see theirs
        // with the prefix stripped, and the prefix is what says the repo type.
        let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let path = uri.path();
        let repo_type = if path.starts_with("/datasets/") {
            crate::names::RepoType::Dataset
        } else if path.starts_with("/spaces/") {
            crate::names::RepoType::Space
        } else {
            crate::names::RepoType::Model
        };
        let ns = params.get("ns").map(String::as_str).unwrap_or("");
        let name = params.get("name").map(String::as_str).unwrap_or("");
        let name = name.strip_suffix(".git").unwrap_or(name);
        // A name that breaks the naming rules cannot exist.
        let name = RepoName::new(repo_type, ns, name).map_err(|_| ApiError::repo_not_found(true))?;
        Ok(RepoRef { name, params, uri })
    }
}
