//! Changing a repo from the browser: the settings page and its actions (visibility, move,
//! branches and tags, typed-confirmation delete), and likes. Every form is CSRF-checked; the
//! API's permission rules apply.

use super::session::{CsrfForm, Web};
use super::{page, repo_view_for, Nav, PageResult, RepoView, WebRepo};
use crate::app::AppState;
use crate::auth::Caller;
use crate::browse;
use crate::db::Role;
use crate::error::ApiError;
use crate::extract::QueryPairs;
use crate::names::RepoName;
use crate::refs::{self, RefKind};
use crate::repos::{find_readable, find_with_role};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    message: Option<String>,
    branches: Vec<String>,
    tags: Vec<String>,
}

/// `/{repo}/settings`: for admins of the namespace.
pub async fn settings_page(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo, q: QueryPairs) -> PageResult {
    let row = find_with_role(&state, &web.caller, &repo.name, &repo.uri, Role::Admin).await?;
    let refs = browse::refs(&state, &row).await?;
    page(SettingsPage {
        repo: repo_view_for(&state, &web.caller, &row, "main").await?,
        nav: web.nav,
        tab: "settings",
        message: q.get("done").map(|d| format!("Done: {d}.")),
        branches: refs.branches.into_iter().map(|b| b.name).collect(),
        tags: refs.tags.into_iter().map(|t| t.name).collect(),
    })
}

fn require_user(caller: &Caller) -> Result<(), ApiError> {
    match caller.user {
        Some(_) => Ok(()),
        None => Err(ApiError::unauthorized("Log in first.")),
    }
}

/// `POST /{repo}/like`: likes or unlikes.
pub async fn like(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo, _: CsrfForm<serde::de::IgnoredAny>) -> PageResult {
    require_user(&web.caller)?;
    let row = find_readable(&state, &web.caller, &repo.name, &repo.uri).await?;
    if let Some(user) = &web.caller.user {
        state.db.toggle_like(user.account.id, &row.id).await?;
    }
    Ok(Redirect::to(&format!("/{}", repo.name.web_path())).into_response())
}

/// `POST /{repo}/settings/{action}`.
pub async fn settings_action(
    State(state): State<AppState>,
    web: Web,
    WebRepo(repo): WebRepo,
    Path(params): Path<HashMap<String, String>>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> PageResult {
    require_user(&web.caller)?;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("").trim().to_string();
    let action = params.get("action").map(String::as_str).unwrap_or("");
    let (state, caller, name, uri) = (&state, &web.caller, &repo.name, &repo.uri);
    match action {
        "visibility" => {
            let row = find_with_role(state, caller, name, uri, Role::Admin).await?;
            let private = match field("visibility").as_str() {
                "private" => true,
                "public" => false,
                _ => return Err(ApiError::bad_request("visibility is public or private").into()),
            };
            state.db.set_private(&row.id, private).await?;
            done(name, if private { "now private" } else { "now public" })
        }
        "move" => {
            let row = find_with_role(state, caller, name, uri, Role::Admin).await?;
            let to = field("to");
            let (ns, new) = to.split_once('/').ok_or_else(|| ApiError::bad_request("the new id is namespace/name"))?;
            let target = RepoName::new(row.name.repo_type, ns, new)?;
            crate::repos::rename(state, caller, &row, &target).await?;
            Ok(Redirect::to(&format!("/{}/settings?done=moved", target.web_path())).into_response())
        }
        "delete" => {
            let row = find_with_role(state, caller, name, uri, Role::Admin).await?;
            if field("confirm") != row.name.id() {
                return Err(ApiError::bad_request(format!("to delete, type the repository id {} exactly", row.name.id())).into());
            }
            crate::repos::delete(state, &row).await?;
            Ok(Redirect::to("/").into_response())
        }
        "branch" | "tag" | "branch-delete" | "tag-delete" => {
            let row = find_with_role(state, caller, name, uri, Role::Write).await?;
            let ref_name = field("name");
            let kind = if action.starts_with("tag") { RefKind::Tag } else { RefKind::Branch };
            let creating = !action.ends_with("-delete");
            if creating {
                let from = Some(field("from")).filter(|f| !f.is_empty()).unwrap_or_else(|| "main".to_string());
                refs::create(state, &row, kind, &ref_name, &from, None).await?;
            } else {
                refs::delete(state, &row, kind, &ref_name).await?;
            }
            let word = if kind == RefKind::Tag { "tag" } else { "branch" };
            done(name, &format!("{word} {ref_name} {}", if creating { "created" } else { "deleted" }))
        }
        _ => Err(ApiError::not_found("no such action").into()),
    }
}

fn done(name: &RepoName, what: &str) -> Result<Response, super::HtmlError> {
    Ok(Redirect::to(&format!("/{}/settings?done={}", name.web_path(), what.replace(' ', "+"))).into_response())
}
