//! The signed LFS transfer endpoints: basic PUT, multipart parts and completion, and GET.

use super::resolve::serve_content;
use crate::app::AppState;
use crate::content::{self, HeldObject};
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;
use crate::lfs;
use crate::storage::{is_sha256, PutError};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_client::types::{Empty, MultipartCompletion};

/// Checks the `exp`/`sig` query of a signed URL for `path`.
fn check_signature(state: &AppState, q: &QueryPairs, path: &str) -> ApiResult<()> {
    let exp = q.get("exp").and_then(|e| e.parse::<i64>().ok());
    let sig = q.get("sig").unwrap_or("");
    match exp {
        Some(exp) if lfs::verify(&state.secret, path, exp, sig) => Ok(()),
        _ => Err(ApiError::forbidden("invalid or expired transfer URL; ask the LFS batch endpoint for a new one")),
    }
}

fn put_error(e: PutError) -> ApiError {
    ApiError::from(e)
}

/// Runs a store write in its own task, so a client that disconnects cannot cancel it halfway:
/// the body stream ends with an error and the write aborts cleanly.
async fn detached<T: Send + 'static>(fut: impl std::future::Future<Output = Result<T, PutError>> + Send + 'static) -> ApiResult<T> {
    tokio::spawn(fut).await.map_err(ApiError::internal)?.map_err(put_error)
}

/// After an upload's bytes hashed to its oid: the object is stored, and this repo holds it.
async fn uploaded(state: &AppState, repo_id: &str, oid: &str, size: u64) -> ApiResult<()> {
    state.db.record_lfs_object(oid, size).await?;
    content::record(state, repo_id, &HeldObject { oid: oid.to_string(), size, xet_hash: None }).await?;
    // Bytes matching a stored copy were not kept: if garbage collection removed that copy just
    // before the repo held it, the upload must be redone rather than reported done.
    if state.storage.object_size(oid).await? != Some(size) {
        return Err(ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "the object was removed while uploading; upload it again")
            .with_header(header::RETRY_AFTER, "1"));
    }
    Ok(())
}

pub async fn put_object(
    State(state): State<AppState>,
    Path((repo_id, oid, size)): Path<(String, String, u64)>,
    q: QueryPairs,
    body: Body,
) -> ApiResult<Json<Empty>> {
    check_signature(&state, &q, &lfs::upload_path(&repo_id, &oid, size))?;
    let storage = state.storage.clone();
    let key = oid.clone();
    detached(async move { storage.put_verified(&key, size, body.into_data_stream()).await }).await?;
    uploaded(&state, &repo_id, &oid, size).await?;
    Ok(Json(Empty {}))
}

pub async fn put_part(
    State(state): State<AppState>,
    Path((repo_id, upload, oid, size, chunk, part)): Path<(String, String, String, u64, u64, String)>,
    q: QueryPairs,
    body: Body,
) -> ApiResult<Response> {
    let part: u64 = part.parse().map_err(|_| ApiError::not_found("unknown part"))?;
    check_signature(&state, &q, &lfs::part_path(&repo_id, &upload, &oid, size, chunk, part))?;
    let parts = size.div_ceil(chunk);
    if part == 0 || part > parts {
        return Err(ApiError::bad_request(format!("part {part} is outside 1..={parts}")));
    }
    let expected = if part < parts { chunk } else { size - chunk * (parts - 1) };
    let storage = state.storage.clone();
    let offset = (part - 1) * chunk;
    let etag =
        detached(async move { storage.put_part(&upload, part as u32, offset, expected, size, body.into_data_stream()).await }).await?;
    let mut resp = Json(Empty {}).into_response();
    let etag = if etag.starts_with('"') { etag } else { format!("\"{etag}\"") };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// Joins the parts, checks size and SHA-256, then publishes the object.
pub async fn complete(
    State(state): State<AppState>,
    Path((repo_id, upload, oid, size, chunk, part)): Path<(String, String, String, u64, u64, String)>,
    q: QueryPairs,
    body: axum::body::Bytes,
) -> ApiResult<Json<Empty>> {
    if part != "complete" {
        return Err(ApiError::not_found("POST goes to the completion URL"));
    }
    check_signature(&state, &q, &lfs::complete_path(&repo_id, &upload, &oid, size, chunk))?;
    let req: MultipartCompletion =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid completion body: {e}")))?;
    if req.oid != oid {
        return Err(ApiError::bad_request(format!("completion is for {oid}, not {}", req.oid)));
    }
    let parts = size.div_ceil(chunk);
    let numbers: Vec<u64> = req.parts.iter().map(|p| p.part_number).collect();
    if numbers != (1..=parts).collect::<Vec<_>>() {
        return Err(ApiError::bad_request(format!("expected parts 1..={parts} in order")));
    }
    for n in 1..=parts {
        if !state.storage.part_exists(&upload, n as u32).await? {
            return Err(ApiError::bad_request(format!("part {n} was not uploaded")));
        }
    }
    let etags = req.parts.into_iter().map(|p| p.etag).collect();
    let storage = state.storage.clone();
    let key = oid.clone();
    detached(async move { storage.complete_multipart(&upload, etags, &key, size).await }).await?;
    uploaded(&state, &repo_id, &oid, size).await?;
    Ok(Json(Empty {}))
}

/// `GET /lfs/objects/{repo}/{oid}`: signed, ignores `Authorization` (hf-hub 0.4 sends it to
/// redirect targets); serves the object only while that repo holds it.
pub async fn get_object(
    State(state): State<AppState>,
    Path((repo_id, oid)): Path<(String, String)>,
    q: QueryPairs,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !is_sha256(&oid) {
        return Err(ApiError::not_found("no such object"));
    }
    check_signature(&state, &q, &lfs::download_path(&repo_id, &oid))?;
    let obj = content::held(&state, &repo_id, &oid).await?.ok_or_else(|| ApiError::not_found("no such object"))?;
    let mut resp = serve_content(&state, &obj, &method, &headers).await?;
    if let Ok(v) = HeaderValue::from_str(&format!("\"{oid}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}
