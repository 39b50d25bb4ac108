//! `/new`: a new repository, in the signed-in user's namespace or an organisation they write to.

use super::session::{caller_for, CsrfForm, SignedIn};
use super::{page, page_with, Nav, PageResult};
use crate::app::AppState;
use crate::db::{Account, Role};
use crate::error::ApiError;
use crate::names::{parse_repo_type, RepoName};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "new_repo.html")]
struct NewRepoPage {
    nav: Nav,
    owners: Vec<String>,
    name: String,
    error: Option<String>,
}

async fn owners(state: &AppState, account: &Account) -> Vec<String> {
    let orgs = state.db.orgs_of(account.id).await.unwrap_or_default();
    std::iter::once(account.name.clone()).chain(orgs.into_iter().filter(|(_, r)| *r >= Role::Write).map(|(o, _)| o)).collect()
}

pub async fn new_repo_page(State(state): State<AppState>, me: SignedIn) -> PageResult {
    page(NewRepoPage { owners: owners(&state, &me.account).await, nav: me.nav, name: String::new(), error: None })
}

#[derive(Deserialize)]
pub struct NewRepoForm {
    owner: String,
    name: String,
    repo_type: String,
    #[serde(default)]
    private: Option<String>,
}

pub async fn new_repo(
    State(state): State<AppState>,
    me: SignedIn,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<NewRepoForm>,
) -> PageResult {
    let caller = caller_for(&state, me.account.clone()).await?;
    let result = async {
        let name = RepoName::new(parse_repo_type(&form.repo_type)?, &form.owner, form.name.trim())?;
        crate::repos::create(&state, &caller, &name, form.private.is_some(), &state.base_url(&headers)).await?;
        Ok::<_, ApiError>(name)
    }
    .await;
    match result {
        Ok(name) => Ok(Redirect::to(&format!("/{}", name.web_path())).into_response()),
        Err(e) => {
            let status = if e.status.is_client_error() { e.status } else { StatusCode::INTERNAL_SERVER_ERROR };
            let again = NewRepoPage { owners: owners(&state, &me.account).await, nav: me.nav, name: form.name, error: Some(e.message) };
            page_with(status, again)
        }
    }
}
