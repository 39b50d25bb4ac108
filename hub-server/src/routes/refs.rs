//! Refs, history, branches, tags, super-squash.

use super::{format_time, next_link};
use crate::app::AppState;
use crate::auth::Caller;
use crate::commits;
use crate::db::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, QueryPairs, RepoPath};
use crate::git::{self, RefInfo};
use crate::repos::{find_readable, find_with_role, signature};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn refs_json(refs: &[RefInfo]) -> Vec<Value> {
    refs.iter().map(|r| json!({ "name": r.name, "ref": r.refname, "targetCommit": r.target })).collect()
}

pub async fn list(State(state): State<AppState>, caller: Caller, path: RepoPath, q: QueryPairs) -> ApiResult<Json<Value>> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    let include_prs = q.flag("include_prs");
    let (branches, tags, prs) = state.with_git(&row.id, |g| Ok((git::branches(g)?, git::tags(g)?, git::pull_requests(g)?))).await?;
    let mut v = json!({ "branches": refs_json(&branches), "tags": refs_json(&tags), "converts": [] });
    if include_prs {
        v["pullRequests"] = json!(refs_json(&prs));
    }
    Ok(Json(v))
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
    let (commits, total) = state
        .with_git(&row.id, move |g| {
            let start = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
            Ok(git::log(g, start, page * limit, limit)?)
        })
        .await?;
    let items: Vec<Value> = commits
        .iter()
        .map(|c| {
            let mut v = json!({
                "id": c.id,
                "title": c.title,
                "message": c.message,
                "authors": [{ "user": c.author }],
                "date": format_time(c.time_ms),
                "parents": c.parents,
            });
            if formatted {
                v["formatted"] = json!({ "title": html_escape(&c.title), "message": html_escape(&c.message) });
            }
            v
        })
        .collect();
    let mut resp = Json(Value::Array(items)).into_response();
    let h = resp.headers_mut();
    h.insert("x-total-count", HeaderValue::from(total));
    if (page + 1) * limit < total {
        if let Ok(v) = HeaderValue::from_str(&next_link(&state.base_url(&headers), &path.uri, "p", &(page + 1).to_string())) {
            h.insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// A branch or tag name git accepts, that is not itself a full ref.
fn validate_ref_name(kind: &str, name: &str) -> ApiResult<()> {
    let full = format!("refs/{kind}s/{name}");
    if name.is_empty() || name.starts_with("refs/") || name.len() > 255 || !git2::Reference::is_valid_name(&full) {
        return Err(ApiError::bad_request(format!("invalid {kind} name {name:?}")));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BranchBody {
    starting_point: Option<String>,
}

pub async fn create_branch(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<BranchBody>,
) -> ApiResult<Json<Value>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let branch = path.param("branch").to_string();
    validate_ref_name("branch", &branch)?;
    let start = body.starting_point.unwrap_or_else(|| "main".to_string());
    state
        .locked(
            &row.id,
            state.with_git(&row.id, move |g| {
                let commit = git::resolve_revision(g, &start).ok_or_else(|| ApiError::revision_not_found(&start))?;
                match g.reference(&format!("refs/heads/{branch}"), commit, false, "branch: created") {
                    Ok(_) => Ok(()),
                    Err(e) if e.code() == git2::ErrorCode::Exists => Err(ApiError::conflict(format!("Branch {branch} already exists"))),
                    Err(e) => Err(e.into()),
                }
            }),
        )
        .await?;
    state.db.touch_repo(&row.id).await?;
    Ok(Json(json!({})))
}

pub async fn delete_branch(State(state): State<AppState>, caller: Caller, path: RepoPath) -> ApiResult<Json<Value>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let branch = path.param("branch").to_string();
    state
        .locked(
            &row.id,
            state.with_git(&row.id, move |g| {
                let refname = format!("refs/heads/{branch}");
                let default = g.find_reference("HEAD").ok().and_then(|h| h.symbolic_target().map(str::to_string));
                if default.as_deref() == Some(refname.as_str()) {
                    return Err(ApiError::forbidden(format!("cannot delete the default branch {branch}")));
                }
                let mut r = g.find_reference(&refname).map_err(|_| ApiError::revision_not_found(&branch))?;
                Ok(r.delete()?)
            }),
        )
        .await?;
    state.db.touch_repo(&row.id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct TagBody {
    tag: String,
    message: Option<String>,
}

/// `POST …/tag/{revision}`: the revision to tag is in the URL, the tag name in the body.
pub async fn create_tag(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<TagBody>,
) -> ApiResult<Json<Value>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    validate_ref_name("tag", &body.tag)?;
    let rev = path.param("rev").to_string();
    let author = signature(&caller)?;
    state
        .locked(
            &row.id,
            state.with_git(&row.id, move |g| {
                let commit = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
                if g.find_reference(&format!("refs/tags/{}", body.tag)).is_ok() {
                    return Err(ApiError::conflict(format!("Tag {} already exists", body.tag)));
                }
                let target = g.find_object(commit, Some(git2::ObjectType::Commit))?;
                let sig = author.signature()?;
                let result = match body.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(message) => g.tag(&body.tag, &target, &sig, message, false).map(|_| ()),
                    None => g.tag_lightweight(&body.tag, &target, false).map(|_| ()),
                };
                match result {
                    Ok(()) => Ok(()),
                    Err(e) if e.code() == git2::ErrorCode::Exists => Err(ApiError::conflict(format!("Tag {} already exists", body.tag))),
                    Err(e) => Err(e.into()),
                }
            }),
        )
        .await?;
    state.db.touch_repo(&row.id).await?;
    Ok(Json(json!({})))
}

pub async fn delete_tag(State(state): State<AppState>, caller: Caller, path: RepoPath) -> ApiResult<Json<Value>> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let tag = path.param("rev").to_string();
    state
        .locked(
            &row.id,
            state.with_git(&row.id, move |g| {
                let mut r = g.find_reference(&format!("refs/tags/{tag}")).map_err(|_| ApiError::revision_not_found(&tag))?;
                Ok(r.delete()?)
            }),
        )
        .await?;
    state.db.touch_repo(&row.id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
pub struct SquashBody {
    message: Option<String>,
}

pub async fn super_squash(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<SquashBody>,
) -> ApiResult<Response> {
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let message = body.message.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| "Super-squash branch".to_string());
    let commit = commits::super_squash(&state, &row, path.param("rev"), &message, signature(&caller)?).await?;
    Ok((StatusCode::OK, Json(json!({ "commitOid": commit.to_string() }))).into_response())
}
