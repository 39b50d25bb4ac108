//! `/settings/account`: the signed-in user's email and password.

use super::login::{hash_password, verify_password};
use super::session::{CsrfForm, SignedIn};
use super::{page_with, Nav, PageResult};
use crate::app::AppState;
use crate::db::Account;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    name: String,
    email: String,
    message: Option<String>,
    error: Option<String>,
}

fn account_view(account: &Account, nav: Nav, message: Option<String>, error: Option<String>) -> PageResult {
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page_with(status, AccountPage { nav, name: account.name.clone(), email: account.email.clone().unwrap_or_default(), message, error })
}

pub async fn account_page(me: SignedIn) -> PageResult {
    account_view(&me.account, me.nav, None, None)
}

#[derive(Deserialize)]
pub struct EmailForm {
    email: String,
}

pub async fn change_email(State(state): State<AppState>, me: SignedIn, CsrfForm(form): CsrfForm<EmailForm>) -> PageResult {
    let mut account = me.account;
    let email = form.email.trim();
    if !email.is_empty() && (!email.contains('@') || email.len() > 254) {
        return account_view(&account, me.nav, None, Some("That does not look like an email address.".into()));
    }
    let email = Some(email).filter(|e| !e.is_empty());
    state.db.set_email(account.id, email).await?;
    account.email = email.map(str::to_string);
    account_view(&account, me.nav, Some("Email saved.".into()), None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
}

pub async fn change_password(State(state): State<AppState>, me: SignedIn, CsrfForm(form): CsrfForm<PasswordForm>) -> PageResult {
    let current_ok = match me.account.password_hash.as_deref() {
        Some(h) => verify_password(h, &form.current).await,
        None => false,
    };
    if !current_ok {
        return account_view(&me.account, me.nav, None, Some("The current password is wrong.".into()));
    }
    if form.new.chars().count() < 8 {
        return account_view(&me.account, me.nav, None, Some("The new password needs 8 characters or more.".into()));
    }
    let hash = hash_password(&form.new).await?;
    state.db.set_password_hash(me.account.id, &hash).await?;
    account_view(&me.account, me.nav, Some("Password changed.".into()), None)
}
