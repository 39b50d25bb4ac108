//! Who a page is for, and forms that came from this site: sessions in the database, the caller
//! of a page (a token if sent, else the session's user), a signed-in extractor that sends
//! strangers to the login page, and forms whose CSRF token must match the session's.

use super::{HtmlError, Nav};
use crate::app::AppState;
use crate::auth::{AuthUser, Caller};
use crate::db::{Account, Role, Token};
use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

pub const USER_KEY: &str = "user_id";
const CSRF_KEY: &str = "csrf";
/// Forms without files are small; the upload form reads its own body.
const MAX_FORM: usize = 2 * 1024 * 1024;

/// The browser session layer of the page routes.
pub type SessionLayer = SessionManagerLayer<crate::sessions::DbSessionStore>;

pub fn session_layer(state: &AppState) -> SessionLayer {
    let secure = state.settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    SessionManagerLayer::new(crate::sessions::DbSessionStore(state.db.clone()))
        .with_name("hub_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(14)))
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> Result<String, ApiError> {
    if let Some(t) = session.get::<String>(CSRF_KEY).await.map_err(ApiError::internal)? {
        return Ok(t);
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    session.insert(CSRF_KEY, &token).await.map_err(ApiError::internal)?;
    Ok(token)
}

/// Refuses a form whose CSRF token is not the session's.
pub async fn check_csrf(session: &Session, sent: &str) -> Result<(), ApiError> {
    let refused = || ApiError::forbidden("This form expired or did not come from this site; reload the page and try again.");
    let expected = session.get::<String>(CSRF_KEY).await.map_err(ApiError::internal)?;
    match expected {
        Some(t) if !sent.is_empty() && constant_eq(t.as_bytes(), sent.as_bytes()) => Ok(()),
        _ => Err(refused()),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn session_user(state: &AppState, session: &Session) -> Result<Option<Account>, ApiError> {
    let Some(id) = session.get::<i64>(USER_KEY).await.map_err(ApiError::internal)? else { return Ok(None) };
    Ok(state.db.find_account_by_id(id).await?.filter(|a| !a.is_org))
}

/// The request's session. Every page route is under the session layer (`routes::router`); one
/// outside it would show signed-in users as strangers and refuse their forms, so it fails loudly.
fn session_of(extensions: &axum::http::Extensions) -> Result<Session, ApiError> {
    extensions.get::<Session>().cloned().ok_or_else(|| ApiError::internal("a page route outside the session layer"))
}

/// A browser session acts like a write token of its user (forms are CSRF-protected).
pub async fn caller_for(state: &AppState, account: Account) -> Result<Caller, ApiError> {
    let orgs = state.db.orgs_of(account.id).await?;
    let token = Token { id: 0, user_id: account.id, name: "web session".into(), role: Role::Write };
    Ok(Caller { user: Some(std::sync::Arc::new(AuthUser { account, token, orgs })), grant: None })
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

/// The caller of a page and what its header shows.
pub struct Web {
    pub caller: Caller,
    pub nav: Nav,
    pub session: Session,
}

impl FromRequestParts<AppState> for Web {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HtmlError> {
        let session = session_of(&parts.extensions)?;
        let (caller, nav) = context(state, &parts.headers, Some(&session)).await?;
        Ok(Web { caller, nav, session })
    }
}

/// The signed-in browser user, or (as the rejection) a redirect to the login page.
pub struct SignedIn {
    pub account: Account,
    pub nav: Nav,
    pub session: Session,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session_of(&parts.extensions).map_err(|e| HtmlError(e).into_response())?;
        match session_user(state, &session).await {
            Ok(Some(account)) => {
                let csrf = csrf_token(&session).await.map_err(|e| HtmlError(e).into_response())?;
                Ok(SignedIn { nav: Nav { user: Some(account.name.clone()), csrf }, account, session })
            }
            Ok(None) => {
                let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let next = form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>();
                Err(Redirect::to(&format!("/login?next={next}")).into_response())
            }
            Err(e) => Err(HtmlError(e).into_response()),
        }
    }
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A URL-encoded form whose `csrf` field is the session's token; `T` reads the other fields.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = HtmlError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, HtmlError> {
        let session = session_of(req.extensions())?;
        let body = axum::body::to_bytes(req.into_body(), MAX_FORM)
            .await
            .map_err(|_| ApiError::payload_too_large(format!("a form may not exceed {MAX_FORM} bytes")))?;
        let field: CsrfField = serde_urlencoded::from_bytes(&body).map_err(|e| ApiError::bad_request(format!("invalid form: {e}")))?;
        check_csrf(&session, &field.csrf).await?;
        let form = serde_urlencoded::from_bytes(&body).map_err(|e| ApiError::bad_request(format!("invalid form: {e}")))?;
        Ok(CsrfForm(form))
    }
}
