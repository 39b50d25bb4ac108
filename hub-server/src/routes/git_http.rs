//! git clone, fetch and push over smart HTTP at a repo's URL (with or without `.git`). git
//! sends credentials only after a 401 with a Basic challenge, so refusals carry one.

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryPairs, RepoRef};
use crate::git_http::{self, GitRequest, GitService};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;

/// git asks for credentials only when a 401 carries this challenge.
pub fn git_challenge(e: ApiError) -> ApiError {
    if e.status == StatusCode::UNAUTHORIZED {
        e.with_header(header::WWW_AUTHENTICATE, "Basic realm=\"hub\"")
    } else {
        e
    }
}

async fn serve(
    state: &AppState,
    repo: &RepoRef,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    service: GitService,
    advertisement: bool,
) -> ApiResult<Response> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = authenticate(state, auth).await.map_err(git_challenge)?;
    let req = GitRequest { service, advertisement, method, uri: &repo.uri, headers };
    git_http::serve(state, &caller, &repo.name, req, body).await.map_err(git_challenge)
}

/// `GET /{repo}/info/refs?service=…`.
pub async fn info_refs(
    State(state): State<AppState>,
    repo: RepoRef,
    q: QueryPairs,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let service = match q.get("service").unwrap_or("") {
        "git-upload-pack" => GitService::UploadPack,
        "git-receive-pack" => GitService::ReceivePack,
        _ => return Err(ApiError::forbidden("only the smart HTTP protocol is served; use git 1.6.6 or newer")),
    };
    serve(&state, &repo, &method, &headers, Body::empty(), service, true).await
}

/// `POST /{repo}/git-upload-pack`: clone and fetch.
pub async fn upload_pack(
    State(state): State<AppState>,
    repo: RepoRef,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    serve(&state, &repo, &method, &headers, body, GitService::UploadPack, false).await
}

/// `POST /{repo}/git-receive-pack`: push.
pub async fn receive_pack(
    State(state): State<AppState>,
    repo: RepoRef,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    serve(&state, &repo, &method, &headers, body, GitService::ReceivePack, false).await
}
