//! Refs, history, branches, tags, super-squash.

use super::{format_time, next_link};
use crate::app::AppState;
use crate::auth::Caller;
use crate::browse::{self, RefInfo};
use crate::commits;
use crate::db::Role;
use crate::error::ApiResult;
use crate::extract::{ApiJson, QueryPairs, RepoPath};
use crate::refs::{self, RefKind};
use crate::repos::{find_readable, find_with_role, signature};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_client::types::{
    BranchRequest, CommitAuthor, CommitOid, Empty, FormattedCommit, GitCommitInfo, GitRef, GitRefs, SquashRequest, TagRequest,
};

fn git_refs(refs: &[RefInfo]) -> Vec<GitRef> {
    refs.iter().map(|r| GitRef { name: r.name.clone(), full_ref: r.refname.clone(), target_commit: r.target.clone() }).collect()
}

pub async fn list(State(state): State<AppState>, caller: Caller, path: RepoPath, q: QueryPairs) -> ApiResult<Json<GitRefs>> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    let include_prs = q.flag("include_prs");
    let browse::Refs { branches, tags, pull_requests: prs } = browse::refs(&state, &row).await?;
    Ok(Json(GitRefs {
        branches: git_refs(&branches),
        tags: git_refs(&tags),
        converts: Vec::new(),
        pull_requests: include_prs.then(|| git_refs(&prs)),
    }))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COMMITS_PAGE: usize = 50;

/// `GET …/commits/{rev}`: newest first, paginated with `Link` (`p` = page number).
pub async fn commits(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    headers: HeaderMap,
    q: QueryPairs,
) -> ApiResult<Response> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    let page = q.number("p")?.unwrap_or(0) as usize;
    let limit = q.number("limit")?.map(|l| l.clamp(1, 1000) as usize).unwrap_or(COMMITS_PAGE);
    let formatted = q.all("expand[]").contains(&"formatted") || q.all("expand").contains(&"formatted");
    let rev = path.param("rev").to_string();
    let (commits, total) = browse::history(&state, &row, &rev, page * limit, limit).await?;
    let items: Vec<GitCommitInfo> = commits
        .iter()
        .map(|c| GitCommitInfo {
            id: c.id.clone(),
            title: c.title.clone(),
            message: c.message.clone(),
            authors: vec![CommitAuthor { user: Some(c.author.clone()) }],
            date: format_time(c.time_ms),
            parents: c.parents.clone(),
            formatted: formatted.then(|| FormattedCommit { title: html_escape(&c.title), message: html_escape(&c.message) }),
        })
        .collect();
    let mut resp = Json(items).into_response();
    let h = resp.headers_mut();
    h.insert("x-total-count", HeaderValue::from(total));
    if (page + 1) * limit < total {
        if let Ok(v) = HeaderValue::from_str(&next_link(&state.base_url(&headers), &path.uri, "p", &(page + 1).to_string())) {
            h.insert(header::LINK, v);
        }
    }
    Ok(resp)
}

pub async fn create_branch(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<BranchRequest>,
) -> ApiResult<Json<Empty>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let start = body.starting_point.unwrap_or_else(|| "main".to_string());
    refs::create(&state, &row, RefKind::Branch, path.param("branch"), &start, None).await?;
    Ok(Json(Empty {}))
}

pub async fn delete_branch(State(state): State<AppState>, caller: Caller, path: RepoPath) -> ApiResult<Json<Empty>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    refs::delete(&state, &row, RefKind::Branch, path.param("branch")).await?;
    Ok(Json(Empty {}))
}

/// `POST …/tag/{revision}`: the revision to tag is in the URL, the tag name in the body.
pub async fn create_tag(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<TagRequest>,
) -> ApiResult<Json<Empty>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let annotation = body.message.map(|m| signature(&caller).map(|a| (m, a))).transpose()?;
    refs::create(&state, &row, RefKind::Tag, &body.tag, path.param("rev"), annotation).await?;
    Ok(Json(Empty {}))
}

pub async fn delete_tag(State(state): State<AppState>, caller: Caller, path: RepoPath) -> ApiResult<Json<Empty>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    refs::delete(&state, &row, RefKind::Tag, path.param("rev")).await?;
    Ok(Json(Empty {}))
}

pub async fn super_squash(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<SquashRequest>,
) -> ApiResult<Response> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let message = body.message.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| "Super-squash branch".to_string());
    let commit = commits::super_squash(&state, &row, path.param("rev"), &message, signature(&caller)?).await?;
    Ok((StatusCode::OK, Json(CommitOid { commit_oid: commit.to_string() })).into_response())
}
