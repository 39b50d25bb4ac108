//! `/{name}`: a user's or an organisation's page, with the repos the caller may see.

use super::session::Web;
use super::{date, page, Nav, PageResult};
use crate::app::AppState;
use crate::db::{RepoQuery, RepoSort};
use crate::error::ApiError;
use crate::names::RepoType;
use askama::Template;
use axum::extract::{Path, State};

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    nav: Nav,
    name: String,
    fullname: Option<String>,
    is_org: bool,
    members: Vec<(String, String)>,
    orgs: Vec<String>,
    /// (url, id, kind · updated, private)
    repos: Vec<(String, String, String, bool)>,
}

/// `/{name}`: a user's or an organisation's page, with the repos the caller may see.
pub async fn profile(State(state): State<AppState>, web: Web, Path(name): Path<String>) -> PageResult {
    let (caller, nav) = (&web.caller, &web.nav);
    let account = state.db.find_account(&name).await?.ok_or_else(|| ApiError::not_found("no such user or organisation"))?;
    let mut repos = Vec::new();
    for repo_type in [RepoType::Model, RepoType::Dataset, RepoType::Space] {
        let query = RepoQuery {
            repo_type,
            search: None,
            author: Some(account.name.clone()),
            tags: Vec::new(),
            pipeline_tag: None,
            sort: RepoSort::LastModified,
            ascending: false,
            visible_namespaces: caller.visible_namespaces(),
            offset: 0,
            limit: 200,
        };
        for r in state.db.list_repos(&query).await?.0 {
            repos.push((
                format!("/{}", r.name.web_path()),
                r.name.id(),
                format!("{} · updated {}", repo_type.as_str(), date(r.last_modified)),
                r.private,
            ));
        }
    }
    let members = if account.is_org { state.db.members_of(account.id).await? } else { Vec::new() };
    let orgs = if account.is_org { Vec::new() } else { state.db.orgs_of(account.id).await?.into_iter().map(|(o, _)| o).collect() };
    page(ProfilePage { nav: nav.clone(), name: account.name, fullname: account.fullname, is_org: account.is_org, members, orgs, repos })
}
