//! `GET|HEAD /{repo}/resolve/{rev}/{path}`: a file's bytes (with Range) and the headers clients
//! cache by: `X-Repo-Commit`, ETags, `X-Linked-*`, and for Xet-backed files `X-Xet-Hash` with
//! the read-token route as `Link: …; rel="xet-auth"`.

use super::range::{range_response, RangeAnswer};
use crate::app::AppState;
use crate::auth::Caller;
use crate::browse;
use crate::browse::Entry;
use crate::content::{self, HeldObject};
use crate::error::{ApiError, ApiResult};
use crate::extract::RepoRef;
use crate::names::{validate_repo_path, RepoType};
use crate::repos::find_readable;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    repo: RepoRef,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let row = find_readable(&state, &caller, &repo.name, &repo.uri).await?;
    let (rev, file) = (repo.param("rev"), repo.param("path"));
    validate_repo_path(file)?;
    caller.check_revision(rev)?;
    let (commit, entry, content) = browse::file(&state, &row, rev, file, method == Method::GET).await?;
    let Entry::File { blob, size, lfs, .. } = entry else { return Err(ApiError::entry_not_found(file, &commit.to_string())) };
    if method == Method::GET && (row.name.repo_type != RepoType::Model || file == "config.json") {
        state.downloads.count(&row.id);
    }
    let mut resp = match lfs {
        Some((pointer, _)) => {
            // Only content this repo holds is served; anything else answers as not stored.
            let obj = content::held_for_read(&state, &row.id, &pointer.oid)
                .await?
                .filter(|o| o.size == pointer.size)
                .ok_or_else(|| ApiError::not_found(format!("the content of {file} ({}) is not stored on this hub", pointer.oid)))?;
            let mut r = serve_content(&state, &obj, &method, &headers).await?;
            let h = r.headers_mut();
            h.insert(header::ETAG, quoted(&pointer.oid));
            h.insert("x-linked-etag", quoted(&pointer.oid));
            h.insert("x-linked-size", HeaderValue::from(pointer.size));
            if let Some(xet) = &obj.xet_hash {
                // huggingface_hub downloads through Xet when both are present (absolute URL).
                let url =
                    format!("{}/api/{}/{}/xet-read-token/{commit}", state.base_url(&headers), row.name.repo_type.plural(), row.name.id());
                if let (Ok(hash), Ok(link)) = (HeaderValue::from_str(xet), HeaderValue::from_str(&format!("<{url}>; rel=\"xet-auth\""))) {
                    h.insert("x-xet-hash", hash);
                    h.insert(header::LINK, link);
                }
            }
            r
        }
        None => {
            let RangeAnswer { status, range, headers: h } = range_response(&headers, size)?;
            let body = match (content, range) {
                (Some(c), Some((a, b))) => Body::from(c.slice(a as usize..b as usize + 1)),
                (Some(c), None) => Body::from(c),
                (None, _) => Body::empty(),
            };
            let mut r = (status, body).into_response();
            r.headers_mut().extend(h);
            r.headers_mut().insert(header::ETAG, quoted(&blob.to_string()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(file)));
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&commit.to_string()) {
        resp.headers_mut().insert("x-repo-commit", v);
    }
    Ok(resp)
}

/// Streams held content (or a range of it): an LFS object, or a Xet file reassembled.
pub async fn serve_content(state: &AppState, obj: &HeldObject, method: &Method, headers: &HeaderMap) -> ApiResult<Response> {
    let RangeAnswer { status, range, headers: h } = range_response(headers, obj.size)?;
    let body =
        if method == Method::HEAD || obj.size == 0 { Body::empty() } else { Body::from_stream(content::read(state, obj, range).await?) };
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(h);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(resp)
}

fn quoted(v: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{v}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "json" => "application/json",
        "md" | "txt" | "csv" | "py" | "yaml" | "yml" | "gitattributes" | "gitignore" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
