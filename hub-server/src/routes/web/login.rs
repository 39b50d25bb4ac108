//! Logging in and out, and signing up. Failed logins are limited per account and per address;
//! passwords are argon2 hashes, checked off the async threads.

use super::session::{csrf_token, CsrfForm, USER_KEY};
use super::{page, page_with, HtmlError, Nav, PageResult};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::QueryPairs;
use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Extension;
use serde::Deserialize;
use tower_sessions::Session;

/// Only a local path: never an open redirect. Browsers drop tabs and newlines from URLs and
/// read `\` as `/`, so `/\t/evil.example` would become `//evil.example`: any control
/// character, space or backslash makes the whole value fall back to `/`.
pub fn safe_next(next: &str) -> String {
    let local = next.starts_with('/') && !next.starts_with("//") && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// Checks a password off the async threads (argon2 takes tens of milliseconds by design).
pub async fn verify_password(hash: &str, password: &str) -> bool {
    let (hash, password) = (hash.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Hashes a new password off the async threads.
pub async fn hash_password(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password)).await?
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    error: Option<String>,
    username: String,
    next: String,
}

pub async fn login_page(session: Session, q: QueryPairs) -> PageResult {
    let next = q.get("next").map(safe_next).unwrap_or_else(|| "/".into());
    page(LoginPage { nav: Nav { user: None, csrf: csrf_token(&session).await? }, error: None, username: String::new(), next })
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// The login form again, with what went wrong.
async fn login_again(session: &Session, form: &LoginForm, error: &str, status: StatusCode) -> PageResult {
    let csrf = csrf_token(session).await.unwrap_or_default();
    let again = LoginPage {
        nav: Nav { user: None, csrf },
        error: Some(error.to_string()),
        username: form.username.clone(),
        next: safe_next(&form.next),
    };
    page_with(status, again)
}

pub async fn login(
    State(state): State<AppState>,
    session: Session,
    client: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> PageResult {
    let ip = client.map(|c| c.0 .0.ip().to_string()).unwrap_or_default();
    if state.login_failures_by_ip.exhausted(&ip) {
        let why = "Too many failed attempts from here: wait a few minutes and try again.";
        return login_again(&session, &form, why, StatusCode::TOO_MANY_REQUESTS).await;
    }
    if state.login_failures.exhausted(&form.username) {
        let why = "Too many failed attempts for this account: wait a few minutes and try again.";
        return login_again(&session, &form, why, StatusCode::TOO_MANY_REQUESTS).await;
    }
    // A name no account can have is not looked up (nor remembered, beyond the address's count).
    let possible = crate::names::validate_name("user", &form.username).is_ok();
    let account = if possible { state.db.find_account(&form.username).await?.filter(|a| !a.is_org) } else { None };
    let ok = match account.as_ref().and_then(|a| a.password_hash.as_deref()) {
        Some(h) => verify_password(h, &form.password).await,
        None => false,
    };
    let Some(account) = account.filter(|_| ok) else {
        state.login_failures_by_ip.record(&ip);
        if possible {
            state.login_failures.record(&form.username);
        }
        return login_again(&session, &form, "Wrong username or password.", StatusCode::UNAUTHORIZED).await;
    };
    // A new session id on login: a session fixed before login is useless after it.
    session.cycle_id().await.map_err(ApiError::internal)?;
    session.insert(USER_KEY, account.id).await.map_err(ApiError::internal)?;
    Ok(Redirect::to(&safe_next(&form.next)).into_response())
}

pub async fn logout(session: Session, CsrfForm(_): CsrfForm<serde::de::IgnoredAny>) -> PageResult {
    session.flush().await.map_err(ApiError::internal)?;
    Ok(Redirect::to("/").into_response())
}

#[derive(Template)]
#[template(path = "join.html")]
struct JoinPage {
    nav: Nav,
    error: Option<String>,
    username: String,
    email: String,
}

fn signup_allowed(state: &AppState) -> Result<(), HtmlError> {
    if state.settings.allow_signup {
        Ok(())
    } else {
        Err(ApiError::forbidden("Sign-up is turned off on this hub: ask an administrator for an account.").into())
    }
}

pub async fn join_page(State(state): State<AppState>, session: Session) -> PageResult {
    signup_allowed(&state)?;
    page(JoinPage {
        nav: Nav { user: None, csrf: csrf_token(&session).await? },
        error: None,
        username: String::new(),
        email: String::new(),
    })
}

#[derive(Deserialize)]
pub struct JoinForm {
    username: String,
    #[serde(default)]
    email: String,
    password: String,
}

pub async fn join(State(state): State<AppState>, session: Session, CsrfForm(form): CsrfForm<JoinForm>) -> PageResult {
    signup_allowed(&state)?;
    let problem = (form.password.chars().count() < 8).then(|| "The password needs 8 characters or more.".to_string());
    let email = Some(form.email.trim()).filter(|e| !e.is_empty());
    let created = match problem {
        Some(p) => Err(p),
        None => crate::accounts::create_user(&state, &form.username, email, Some(&form.password)).await.map_err(|e| e.to_string()),
    };
    match created {
        Ok(account) => {
            session.cycle_id().await.map_err(ApiError::internal)?;
            session.insert(USER_KEY, account.id).await.map_err(ApiError::internal)?;
            Ok(Redirect::to("/").into_response())
        }
        Err(message) => {
            let nav = Nav { user: None, csrf: csrf_token(&session).await.unwrap_or_default() };
            page_with(StatusCode::BAD_REQUEST, JoinPage { nav, error: Some(message), username: form.username, email: form.email })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_local_path_or_home() {
        assert_eq!(safe_next("/alice/tiny?tab=files"), "/alice/tiny?tab=files");
        for hostile in
            ["//evil.example/x", "/\t/evil.example/x", "/\\evil.example", "https://evil.example", "/a\r\nSet-Cookie: x", "/ x", ""]
        {
            assert_eq!(safe_next(hostile), "/", "{hostile:?}");
        }
    }
}
