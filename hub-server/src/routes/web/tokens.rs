//! `/settings/tokens`: the signed-in user's access tokens: listed, created (shown once), revoked.

use super::session::{CsrfForm, SignedIn};
use super::{date, page, Nav, PageResult};
use crate::app::AppState;
use crate::db::{Account, Role};
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

struct TokenRow {
    id: i64,
    name: String,
    role: String,
    created: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    nav: Nav,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
    error: Option<String>,
}

async fn tokens_view(state: &AppState, account: &Account, nav: Nav, new_token: Option<String>, error: Option<String>) -> PageResult {
    let tokens = state.db.tokens_of(account.id).await?;
    page(TokensPage {
        nav,
        tokens: tokens.into_iter().map(|t| TokenRow { id: t.id, name: t.name, role: t.role, created: date(t.created_at) }).collect(),
        new_token,
        error,
    })
}

pub async fn tokens_page(State(state): State<AppState>, me: SignedIn) -> PageResult {
    tokens_view(&state, &me.account, me.nav, None, None).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    role: String,
}

pub async fn create_token(State(state): State<AppState>, me: SignedIn, CsrfForm(form): CsrfForm<TokenForm>) -> PageResult {
    let role = match form.role.as_str() {
        "read" => Role::Read,
        "write" => Role::Write,
        _ => return tokens_view(&state, &me.account, me.nav, None, Some("A token is read or write.".into())).await,
    };
    let name = form.name.trim();
    if name.is_empty() || name.len() > 100 {
        return tokens_view(&state, &me.account, me.nav, None, Some("Give the token a name (up to 100 characters).".into())).await;
    }
    let token = crate::accounts::create_token(&state, &me.account.name, name, role).await?;
    tokens_view(&state, &me.account, me.nav, Some(token), None).await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<i64>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    if !state.db.revoke_token(me.account.id, id).await? {
        return Err(ApiError::not_found("no such token").into());
    }
    Ok(Redirect::to("/settings/tokens").into_response())
}
