//! `/api/repos/{create,delete,move}` and `…/settings`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, RepoPath};
use crate::names::{RepoName, RepoType};
use crate::repos;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use hub_client::types::{Empty, MoveRequest, RepoRequest, RepoSettings, RepoUrl, SettingsRequest};
use serde_json::Value;

/// The repo named by a create or delete body: `organization` null means the caller's own namespace.
fn resolve(body: &RepoRequest, caller: &Caller) -> ApiResult<RepoName> {
    let repo_type = crate::names::parse_repo_type(body.repo_type.as_deref().unwrap_or("model"))?;
    let name = body.name.as_deref().unwrap_or("");
    let namespace = match (&body.organization, caller.name()) {
        (Some(org), _) => org.clone(),
        (None, Some(me)) => me.to_string(),
        (None, None) => return Err(ApiError::unauthorized("You must be authenticated to manage repositories")),
    };
    RepoName::new(repo_type, &namespace, name)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RepoRequest>,
) -> ApiResult<Json<RepoUrl>> {
    if caller.user.is_none() {
        return Err(ApiError::unauthorized("You must be authenticated (pass a write access token) to create a repository"));
    }
    let name = resolve(&body, &caller)?;
    let private = match (body.visibility.as_deref(), body.private) {
        (Some("private"), _) => true,
        (Some("public"), _) | (None, None) => false,
        (Some("protected"), _) => return Err(ApiError::bad_request("visibility 'protected' applies to spaces and is not supported")),
        (Some(other), _) => return Err(ApiError::bad_request(format!("unknown visibility {other:?}: use public or private"))),
        (None, Some(p)) => p,
    };
    let base = state.base_url(&headers);
    repos::create(&state, &caller, &name, private, &base).await?;
    let id = name.id();
    Ok(Json(RepoUrl { url: repos::repo_url(&base, &name), name: Some(id.clone()), id: Some(id) }))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    ApiJson(body): ApiJson<RepoRequest>,
) -> ApiResult<Json<Empty>> {
    let name =
        resolve(&body, &caller)
            .map_err(|e| if e.status.as_u16() == 400 { ApiError::repo_not_found(caller.is_authenticated()) } else { e })?;
    let row = repos::find_with_role(&state, &caller, &name, &uri, Role::Admin).await?;
    repos::delete(&state, &row).await?;
    Ok(Json(Empty {}))
}

fn split_id(repo_type: RepoType, id: &str) -> ApiResult<RepoName> {
    let (ns, name) = id.split_once('/').ok_or_else(|| ApiError::bad_request(format!("{id:?} is not of the form namespace/name")))?;
    RepoName::new(repo_type, ns, name)
}

pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(body): ApiJson<MoveRequest>,
) -> ApiResult<Json<RepoUrl>> {
    let repo_type = crate::names::parse_repo_type(body.repo_type.as_deref().unwrap_or("model"))?;
    let from = split_id(repo_type, &body.from_repo)?;
    let to = split_id(repo_type, &body.to_repo)?;
    let row = repos::find_with_role(&state, &caller, &from, &uri, Role::Admin).await?;
    repos::rename(&state, &caller, &row, &to).await?;
    Ok(Json(RepoUrl { url: repos::repo_url(&state.base_url(&headers), &to), name: None, id: None }))
}

pub async fn settings(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    ApiJson(body): ApiJson<SettingsRequest>,
) -> ApiResult<Json<RepoSettings>> {
    let row = repos::find_with_role(&state, &caller, &path.name, &path.uri, Role::Admin).await?;
    let private = match (body.visibility.as_deref(), body.private) {
        (Some("private"), _) => Some(true),
        (Some("public"), _) => Some(false),
        (Some(other), _) => return Err(ApiError::bad_request(format!("unknown visibility {other:?}: use public or private"))),
        (None, p) => p,
    };
    match &body.gated {
        None | Some(Value::Bool(false)) => {}
        Some(_) => return Err(ApiError::bad_request("gated repositories are not supported by this hub yet; use private instead")),
    }
    let private = private.unwrap_or(row.private);
    if private != row.private {
        state.db.set_private(&row.id, private).await?;
    }
    Ok(Json(RepoSettings { private, gated: Value::Bool(false) }))
}
