//! `POST …/preupload/{rev}` and `POST …/commit/{rev}`.

use crate::app::AppState;
use crate::attributes::{IgnoreRules, LfsRules, LFS_SIZE_THRESHOLD};
use crate::auth::Caller;
use crate::browse;
use crate::commits;
use crate::db::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, QueryPairs, RepoPath};
use crate::names::validate_repo_path;
use crate::repos::{find_with_role, signature};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use base64::Engine;
use hub_client::types::{CommitResponse, PreuploadDecision, PreuploadRequest, PreuploadResponse, UploadMode};

/// Decides, per file, LFS or inline, whether `.gitignore` excludes it, and the remote oid.
pub async fn preupload(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<PreuploadRequest>,
) -> ApiResult<Json<PreuploadResponse>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    if body.files.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 files per preupload request"));
    }
    for f in &body.files {
        validate_repo_path(&f.path)?;
    }
    let paths: Vec<String> = body.files.iter().map(|f| f.path.clone()).collect();
    let (commit, attributes, gitignore, remote) = browse::upload_context(&state, &row, path.param("rev"), paths).await?;
    let rules = LfsRules::parse(&attributes);
    let mut ignore_sources = vec![gitignore.as_str()];
    if let Some(extra) = body.git_ignore.as_deref() {
        ignore_sources.push(extra);
    }
    let ignore = IgnoreRules::parse(&ignore_sources);
    let mut files = Vec::with_capacity(body.files.len());
    for (f, oid) in body.files.iter().zip(remote) {
        let sample = base64::engine::general_purpose::STANDARD.decode(f.sample.as_bytes()).unwrap_or_default();
        let lfs = f.size > 0 && (rules.is_lfs(&f.path) || f.size >= LFS_SIZE_THRESHOLD || sample.contains(&0));
        files.push(PreuploadDecision {
            path: f.path.clone(),
            upload_mode: if lfs { UploadMode::Lfs } else { UploadMode::Regular },
            should_ignore: ignore.is_ignored(&f.path),
            oid,
        });
    }
    Ok(Json(PreuploadResponse { files, commit_oid: Some(commit.to_string()) }))
}

pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    headers: HeaderMap,
    q: QueryPairs,
    body: Body,
) -> ApiResult<Json<CommitResponse>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let sig = signature(&caller)?;
    let (header, ops) = commits::parse_body(&state, &caller, &row, body).await?;
    let create_pr = q.flag("create_pr");
    let outcome = commits::commit(&state, &row, path.param("rev"), create_pr, header, ops, sig).await?;
    let repo_url = crate::repos::repo_url(&state.base_url(&headers), &row.name);
    Ok(Json(CommitResponse {
        success: Some(true),
        commit_oid: outcome.commit.to_string(),
        commit_url: format!("{repo_url}/commit/{}", outcome.commit),
        pull_request_url: outcome.pr_number.map(|n| format!("{repo_url}/discussions/{n}")),
        pr_num: outcome.pr_number,
    }))
}
