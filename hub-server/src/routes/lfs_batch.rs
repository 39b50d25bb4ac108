//! The Git LFS API at a repo's URL: `…/info/lfs/objects/batch` and `…/verify`. git-lfs asks its
//! credential helper only when a 401 carries an `LFS-Authenticate` challenge.

use crate::app::AppState;
use crate::auth::authenticate;
use crate::content;
use crate::db::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::RepoRef;
use crate::lfs::{self, VerifyTarget};
use crate::repos::{find_readable, find_with_role};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hub_client::types::{LfsBatchRequest, LfsVerified, LfsVerifyRequest};

fn lfs_challenge(e: ApiError) -> ApiError {
    if e.status == StatusCode::UNAUTHORIZED {
        e.with_header(HeaderName::from_static("lfs-authenticate"), "Basic realm=\"hub\"")
            .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"hub\"")
    } else {
        e
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> ApiResult<T> {
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.map_err(|_| ApiError::payload_too_large("request body too large"))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn lfs_json(v: impl serde::Serialize) -> Response {
    let mut r = axum::Json(v).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.git-lfs+json"));
    r
}

/// `POST /{repo}.git/info/lfs/objects/batch`.
pub async fn batch(State(state): State<AppState>, repo: RepoRef, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    batch_inner(&state, &repo, &headers, body).await.map_err(lfs_challenge)
}

async fn batch_inner(state: &AppState, repo: &RepoRef, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = authenticate(state, headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())).await?;
    let req: LfsBatchRequest = read_json(body).await?;
    if req.hash_algo.as_deref().is_some_and(|a| a != "sha256") {
        return Err(ApiError::new(StatusCode::CONFLICT, "only the sha256 hash algorithm is supported"));
    }
    if req.objects.len() > 10_000 {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "at most 10000 objects per batch"));
    }
    let base = state.base_url(headers);
    match req.operation.as_str() {
        "upload" => {
            if !caller.is_authenticated() {
                return Err(ApiError::unauthorized("Uploading needs credentials: a write access token"));
            }
            let row = find_with_role(state, &caller, &repo.name, &repo.uri, Role::Write).await?;
            let verify = VerifyTarget {
                href: format!("{base}/{}.git/info/lfs/objects/verify", row.name.web_path()),
                authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string),
            };
            Ok(lfs_json(lfs::upload_batch(state, &row.id, &base, &req, &verify).await?))
        }
        "download" => {
            let row = find_readable(state, &caller, &repo.name, &repo.uri).await?;
            Ok(lfs_json(lfs::download_batch(state, &row.id, &base, &req).await?))
        }
        other => Err(ApiError::bad_request(format!("unknown LFS operation {other:?}: expected upload or download"))),
    }
}

/// `POST /{repo}.git/info/lfs/objects/verify`: 200 once this repo holds the object at that size.
pub async fn verify(State(state): State<AppState>, repo: RepoRef, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    verify_inner(&state, &repo, &headers, body).await.map_err(lfs_challenge)
}

async fn verify_inner(state: &AppState, repo: &RepoRef, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = authenticate(state, headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())).await?;
    let row = find_with_role(state, &caller, &repo.name, &repo.uri, Role::Write).await?;
    let req: LfsVerifyRequest = read_json(body).await?;
    let oid = req.oid.to_ascii_lowercase();
    match content::held(state, &row.id, &oid).await? {
        Some(obj) if obj.size == req.size => Ok(lfs_json(LfsVerified { message: "ok".into() })),
        Some(obj) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("object {} is stored with {} bytes, not {}", req.oid, obj.size, req.size),
        )),
        None => Err(ApiError::not_found(format!("object {} is not stored", req.oid))),
    }
}
