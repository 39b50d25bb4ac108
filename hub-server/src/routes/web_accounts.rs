//! Accounts in the browser: sign up, log in and out, access tokens, new repositories. Every
//! form carries the session's CSRF token; cookies are HttpOnly and SameSite=Lax; failed logins
//! are rate limited; passwords are argon2 hashes.

use super::web::{error_page, Nav};
use crate::app::AppState;
use crate::auth::{AuthUser, Caller};
use crate::db::{Account, Role, Token};
use crate::error::ApiError;
use crate::names::{parse_repo_type, RepoName};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

const USER_KEY: &str = "user_id";
const CSRF_KEY: &str = "csrf";

pub fn session_layer(state: &AppState) -> SessionManagerLayer<crate::sessions::DbSessionStore> {
    let secure = state.settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    SessionManagerLayer::new(crate::sessions::DbSessionStore(state.db.clone()))
        .with_name("hub_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(14)))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

/// The session's CSRF token, created on first use.
async fn csrf_token(session: &Session) -> Result<String, ApiError> {
    if let Some(t) = session.get::<String>(CSRF_KEY).await.map_err(internal)? {
        return Ok(t);
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    session.insert(CSRF_KEY, &token).await.map_err(internal)?;
    Ok(token)
}

/// Refuses a form whose CSRF token is not the session's.
pub(super) async fn check_csrf(session: &Session, sent: &str) -> Result<(), ApiError> {
    let expected = session.get::<String>(CSRF_KEY).await.map_err(internal)?;
    match expected {
        Some(t) if !sent.is_empty() && constant_eq(t.as_bytes(), sent.as_bytes()) => Ok(()),
        _ => Err(ApiError::forbidden("This form expired or did not come from this site; reload the page and try again.")),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn session_user(state: &AppState, session: &Session) -> Result<Option<Account>, ApiError> {
    let Some(id) = session.get::<i64>(USER_KEY).await.map_err(internal)? else { return Ok(None) };
    Ok(state.db.find_account_by_id(id).await?.filter(|a| !a.is_org))
}

/// A browser session acts like a write token of its user (forms are CSRF-protected).
async fn caller_for(state: &AppState, account: Account) -> Result<Caller, ApiError> {
    let orgs = state.db.orgs_of(account.id).await?;
    let token = Token { id: 0, user_id: account.id, name: "web session".into(), role: Role::Write };
    Ok(Caller { user: Some(AuthUser { account, token, orgs }), grant: None })
}

/// Who a web request is: a Bearer token if sent, else the session's user; and the header state.
pub async fn context(state: &AppState, headers: &HeaderMap, session: Option<&Session>) -> Result<(Caller, Nav), ApiError> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if auth.is_some() {
        let caller = crate::auth::authenticate(state, auth).await?;
        let nav = Nav { user: caller.name().map(str::to_string), csrf: String::new() };
        return Ok((caller, nav));
    }
    let Some(session) = session else { return Ok((Caller::default(), Nav::default())) };
    match session_user(state, session).await? {
        Some(account) => {
            let nav = Nav { user: Some(account.name.clone()), csrf: csrf_token(session).await? };
            Ok((caller_for(state, account).await?, nav))
        }
        // Anonymous pages carry no form, so no session is created for them (crawlers leave no rows).
        None => Ok((Caller::default(), Nav::default())),
    }
}

fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => error_page(ApiError::internal(e)),
    }
}

/// Only a local path: never an open redirect. Browsers drop tabs and newlines from URLs and
/// read `\` as `/`, so `/\t/evil.example` would become `//evil.example`: any control
/// character, space or backslash makes the whole value fall back to `/`.
fn safe_next(next: &str) -> String {
    let local = next.starts_with('/') && !next.starts_with("//") && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local {
        next.to_string()
    } else {
        "/".to_string()
    }
}

// ---- log in / out ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    error: Option<String>,
    username: String,
    next: String,
}

pub async fn login_page(session: Session, uri: axum::http::Uri) -> Response {
    let next = crate::extract::QueryPairs::parse(uri.query()).get("next").map(safe_next).unwrap_or_else(|| "/".into());
    match csrf_token(&session).await {
        Ok(csrf) => render(LoginPage { nav: Nav { user: None, csrf }, error: None, username: String::new(), next }),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Checks a password off the async threads (argon2 takes tens of milliseconds by design).
async fn verify_password(hash: &str, password: &str) -> bool {
    let (hash, password) = (hash.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Hashes a new password off the async threads.
async fn hash_password(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password)).await?
}

/// The login form again, with what went wrong.
async fn login_again(session: &Session, form: &LoginForm, error: &str, status: StatusCode) -> Response {
    let csrf = csrf_token(session).await.unwrap_or_default();
    let mut r = render(LoginPage {
        nav: Nav { user: None, csrf },
        error: Some(error.to_string()),
        username: form.username.clone(),
        next: safe_next(&form.next),
    });
    *r.status_mut() = status;
    r
}

pub async fn login(
    State(state): State<AppState>,
    session: Session,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    let ip = client.map(|c| c.0 .0.ip().to_string()).unwrap_or_default();
    if state.login_failures_by_ip.exhausted(&ip) {
        return login_again(
            &session,
            &form,
            "Too many failed attempts from here: wait a few minutes and try again.",
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    }
    if state.login_failures.exhausted(&form.username) {
        return login_again(
            &session,
            &form,
            "Too many failed attempts for this account: wait a few minutes and try again.",
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    }
    // A name no account can have is not looked up (nor remembered, beyond the address's count).
    let possible = crate::names::validate_name("user", &form.username).is_ok();
    let account = match possible {
        true => match state.db.find_account(&form.username).await {
            Ok(a) => a.filter(|a| !a.is_org),
            Err(e) => return error_page(e.into()),
        },
        false => None,
    };
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
    if let Err(e) = session.cycle_id().await {
        return error_page(internal(e));
    }
    if let Err(e) = session.insert(USER_KEY, account.id).await {
        return error_page(internal(e));
    }
    Redirect::to(&safe_next(&form.next)).into_response()
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(session: Session, Form(form): Form<CsrfOnly>) -> Response {
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    if let Err(e) = session.flush().await {
        return error_page(internal(e));
    }
    Redirect::to("/").into_response()
}

// ---- sign up ----

#[derive(Template)]
#[template(path = "join.html")]
struct JoinPage {
    nav: Nav,
    error: Option<String>,
    username: String,
    email: String,
}

pub async fn join_page(State(state): State<AppState>, session: Session) -> Response {
    if !state.settings.allow_signup {
        return error_page(ApiError::forbidden("Sign-up is turned off on this hub: ask an administrator for an account."));
    }
    match csrf_token(&session).await {
        Ok(csrf) => render(JoinPage { nav: Nav { user: None, csrf }, error: None, username: String::new(), email: String::new() }),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
pub struct JoinForm {
    #[serde(default)]
    csrf: String,
    username: String,
    #[serde(default)]
    email: String,
    password: String,
}

pub async fn join(State(state): State<AppState>, session: Session, Form(form): Form<JoinForm>) -> Response {
    if !state.settings.allow_signup {
        return error_page(ApiError::forbidden("Sign-up is turned off on this hub: ask an administrator for an account."));
    }
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    let problem = if form.password.chars().count() < 8 { Some("The password needs 8 characters or more.".to_string()) } else { None };
    let email = Some(form.email.trim()).filter(|e| !e.is_empty());
    let created = match problem {
        Some(p) => Err(p),
        None => crate::accounts::create_user(&state, &form.username, email, Some(&form.password)).await.map_err(|e| e.to_string()),
    };
    match created {
        Ok(account) => {
            if session.cycle_id().await.is_err() || session.insert(USER_KEY, account.id).await.is_err() {
                return error_page(ApiError::internal("could not start a session"));
            }
            Redirect::to("/").into_response()
        }
        Err(message) => {
            let csrf = csrf_token(&session).await.unwrap_or_default();
            let mut r =
                render(JoinPage { nav: Nav { user: None, csrf }, error: Some(message), username: form.username, email: form.email });
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

// ---- signed-in pages ----

/// The signed-in account, or a redirect to the login page.
async fn require_login(state: &AppState, session: &Session, here: &str) -> Result<(Account, Nav), Response> {
    match session_user(state, session).await {
        Ok(Some(account)) => {
            let csrf = csrf_token(session).await.map_err(error_page)?;
            Ok((account.clone(), Nav { user: Some(account.name), csrf }))
        }
        Ok(None) => Err(Redirect::to(&format!("/login?next={here}")).into_response()),
        Err(e) => Err(error_page(e)),
    }
}

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

async fn tokens_view(state: &AppState, account: &Account, nav: Nav, new_token: Option<String>, error: Option<String>) -> Response {
    match state.db.tokens_of(account.id).await {
        Ok(list) => render(TokensPage {
            nav,
            tokens: list
                .into_iter()
                .map(|t| TokenRow { id: t.id, name: t.name, role: t.role, created: super::format_time(t.created_at)[..10].to_string() })
                .collect(),
            new_token,
            error,
        }),
        Err(e) => error_page(e.into()),
    }
}

pub async fn tokens_page(State(state): State<AppState>, session: Session) -> Response {
    match require_login(&state, &session, "/settings/tokens").await {
        Ok((account, nav)) => tokens_view(&state, &account, nav, None, None).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    name: String,
    role: String,
}

pub async fn create_token(State(state): State<AppState>, session: Session, Form(form): Form<TokenForm>) -> Response {
    let (account, nav) = match require_login(&state, &session, "/settings/tokens").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    let role = match form.role.as_str() {
        "read" => Role::Read,
        "write" => Role::Write,
        _ => return tokens_view(&state, &account, nav, None, Some("A token is read or write.".into())).await,
    };
    let name = form.name.trim();
    if name.is_empty() || name.len() > 100 {
        return tokens_view(&state, &account, nav, None, Some("Give the token a name (up to 100 characters).".into())).await;
    }
    match crate::accounts::create_token(&state, &account.name, name, role).await {
        Ok(token) => tokens_view(&state, &account, nav, Some(token), None).await,
        Err(e) => error_page(ApiError::internal(e)),
    }
}

pub async fn revoke_token(State(state): State<AppState>, session: Session, Path(id): Path<i64>, Form(form): Form<CsrfOnly>) -> Response {
    let (account, _) = match require_login(&state, &session, "/settings/tokens").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    match state.db.revoke_token(account.id, id).await {
        Ok(true) => Redirect::to("/settings/tokens").into_response(),
        Ok(false) => error_page(ApiError::not_found("no such token")),
        Err(e) => error_page(e.into()),
    }
}

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

pub async fn new_repo_page(State(state): State<AppState>, session: Session) -> Response {
    match require_login(&state, &session, "/new").await {
        Ok((account, nav)) => render(NewRepoPage { owners: owners(&state, &account).await, nav, name: String::new(), error: None }),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct NewRepoForm {
    #[serde(default)]
    csrf: String,
    owner: String,
    name: String,
    repo_type: String,
    #[serde(default)]
    private: Option<String>,
}

pub async fn new_repo(State(state): State<AppState>, session: Session, headers: HeaderMap, Form(form): Form<NewRepoForm>) -> Response {
    let (account, nav) = match require_login(&state, &session, "/new").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    let caller = match caller_for(&state, account.clone()).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let result = async {
        let name = RepoName::new(parse_repo_type(&form.repo_type)?, &form.owner, form.name.trim())?;
        crate::repos::create(&state, &caller, &name, form.private.is_some(), &state.base_url(&headers)).await?;
        Ok::<_, ApiError>(name)
    }
    .await;
    match result {
        Ok(name) => Redirect::to(&format!("/{}", name.web_path())).into_response(),
        Err(e) => {
            let mut r = render(NewRepoPage { owners: owners(&state, &account).await, nav, name: form.name, error: Some(e.message) });
            *r.status_mut() = if e.status.is_client_error() { e.status } else { StatusCode::INTERNAL_SERVER_ERROR };
            r
        }
    }
}

// ---- account settings ----

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    name: String,
    email: String,
    message: Option<String>,
    error: Option<String>,
}

fn account_view(account: &Account, nav: Nav, message: Option<String>, error: Option<String>) -> Response {
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut r = render(AccountPage { nav, name: account.name.clone(), email: account.email.clone().unwrap_or_default(), message, error });
    *r.status_mut() = status;
    r
}

pub async fn account_page(State(state): State<AppState>, session: Session) -> Response {
    match require_login(&state, &session, "/settings/account").await {
        Ok((account, nav)) => account_view(&account, nav, None, None),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf: String,
    email: String,
}

pub async fn change_email(State(state): State<AppState>, session: Session, Form(form): Form<EmailForm>) -> Response {
    let (mut account, nav) = match require_login(&state, &session, "/settings/account").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    let email = form.email.trim();
    if !email.is_empty() && (!email.contains('@') || email.len() > 254) {
        return account_view(&account, nav, None, Some("That does not look like an email address.".into()));
    }
    let email = Some(email).filter(|e| !e.is_empty());
    if let Err(e) = state.db.set_email(account.id, email).await {
        return error_page(e.into());
    }
    account.email = email.map(str::to_string);
    account_view(&account, nav, Some("Email saved.".into()), None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current: String,
    new: String,
}

pub async fn change_password(State(state): State<AppState>, session: Session, Form(form): Form<PasswordForm>) -> Response {
    let (account, nav) = match require_login(&state, &session, "/settings/account").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = check_csrf(&session, &form.csrf).await {
        return error_page(e);
    }
    let current_ok = match account.password_hash.as_deref() {
        Some(h) => verify_password(h, &form.current).await,
        None => false,
    };
    if !current_ok {
        return account_view(&account, nav, None, Some("The current password is wrong.".into()));
    }
    if form.new.chars().count() < 8 {
        return account_view(&account, nav, None, Some("The new password needs 8 characters or more.".into()));
    }
    let hash = match hash_password(&form.new).await {
        Ok(h) => h,
        Err(e) => return error_page(ApiError::internal(e)),
    };
    if let Err(e) = state.db.set_password_hash(account.id, &hash).await {
        return error_page(e.into());
    }
    account_view(&account, nav, Some("Password changed.".into()), None)
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
