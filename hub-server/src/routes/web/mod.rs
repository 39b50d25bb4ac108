//! The web UI: server-rendered pages (askama templates in `templates/`) over the same domain
//! functions and privacy rules as the API. A private repo is a 404 page to anyone who may not
//! see it. One file per page family; `session` holds the plumbing every page shares (who is
//! signed in, CSRF-checked forms).

pub mod account;
pub mod files;
pub mod history;
pub mod listing;
pub mod login;
pub mod new_repo;
pub mod profile;
pub mod repo_admin;
pub mod repo_page;
pub mod session;
pub mod tokens;
pub mod upload;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::RepoRow;
use crate::error::{ApiError, ErrorCode};
use crate::names::RepoType;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// What the header shows: who is signed in, and the CSRF token its forms carry.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub user: Option<String>,
    pub csrf: String,
}

/// An error a page answers with: the HTML face of an [`ApiError`].
#[derive(Debug)]
pub struct HtmlError(pub ApiError);

/// A page, or the HTML page of an error.
pub type PageResult = Result<Response, HtmlError>;

/// Whatever converts into an API error (database, git, storage, I/O failures) converts into a
/// page error the same way.
impl<E> From<E> for HtmlError
where
    ApiError: From<E>,
{
    fn from(e: E) -> Self {
        HtmlError(ApiError::from(e))
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        error_page(self.0)
    }
}

/// Renders a page template.
pub fn page(t: impl Template) -> PageResult {
    Ok(Html(t.render().map_err(ApiError::internal)?).into_response())
}

/// Renders a page template with a status (a form shown again with its error).
pub fn page_with(status: StatusCode, t: impl Template) -> PageResult {
    let mut r = page(t)?;
    *r.status_mut() = status;
    Ok(r)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Nav,
    status: String,
    message: String,
}

/// The HTML face of an API error: not-found kinds (and privacy refusals) are 404 pages.
pub fn error_page(e: ApiError) -> Response {
    let status = match e.code {
        Some(ErrorCode::RepoNotFound | ErrorCode::RevisionNotFound | ErrorCode::EntryNotFound) => StatusCode::NOT_FOUND,
        _ if e.status.is_redirection() => return e.into_response(),
        _ => e.status,
    };
    let message = if status == StatusCode::NOT_FOUND {
        "Nothing here: the page, repository, revision or file does not exist, or you may not see it.".to_string()
    } else {
        e.message.clone()
    };
    let body = ErrorPage { nav: Nav::default(), status: status.to_string(), message }.render().unwrap_or_default();
    let mut resp = (status, Html(body)).into_response();
    // What the error says besides its message (Retry-After on a 503, a challenge on a 401).
    for (name, value) in e.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

/// The inference widget's script (pages work without it).
pub async fn widget_script() -> Response {
    asset(include_str!("../../../../static/widget.js"), "text/javascript; charset=utf-8")
}

/// The files page's revision selector.
pub async fn revs_script() -> Response {
    asset(include_str!("../../../../static/revs.js"), "text/javascript; charset=utf-8")
}

pub async fn stylesheet() -> Response {
    asset(include_str!("../../../../static/style.css"), "text/css; charset=utf-8")
}

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(crate) fn date(ms: i64) -> String {
    super::format_time(ms)[..10].to_string()
}

/// `YYYY-MM-DD HH:MM`.
pub(crate) fn date_time(ms: i64) -> String {
    super::format_time(ms)[..16].replace('T', " ")
}

/// `1234567` → `1,234,567`.
pub(crate) fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The header of a repo's pages: names, counters, and the tabs this caller may use.
pub struct RepoView {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub url: String,
    pub private: bool,
    pub likes: i64,
    pub downloads: i64,
    pub license: Option<String>,
    pub tags: Vec<String>,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub rev: String,
    pub rev_enc: String,
    pub liked: bool,
    pub can_write: bool,
    pub can_admin: bool,
}

/// The header of a repo's pages for this caller (likes and the tabs they may use).
pub async fn repo_view_for(state: &AppState, caller: &Caller, row: &RepoRow, rev: &str) -> Result<RepoView, ApiError> {
    let (kind, kind_label) = match row.name.repo_type {
        RepoType::Model => ("model", "Model"),
        RepoType::Dataset => ("dataset", "Dataset"),
        RepoType::Space => ("space", "Space"),
    };
    let mut view = RepoView {
        id: row.name.id(),
        owner: row.name.namespace.clone(),
        name: row.name.name.clone(),
        url: format!("/{}", row.name.web_path()),
        private: row.private,
        likes: row.likes,
        downloads: row.downloads,
        license: row.card_data.as_ref().and_then(|c| c.get("license")).and_then(|l| l.as_str()).map(str::to_string),
        tags: row.tags.clone(),
        kind,
        kind_label,
        rev: rev.to_string(),
        rev_enc: enc(rev),
        liked: false,
        can_write: false,
        can_admin: false,
    };
    if let Some(user) = &caller.user {
        view.liked = state.db.has_liked(user.account.id, &row.id).await?;
        let role = caller.role_in(&row.name.namespace);
        view.can_write = role.is_some_and(|r| r >= crate::db::Role::Write);
        view.can_admin = role.is_some_and(|r| r >= crate::db::Role::Admin);
    }
    Ok(view)
}

/// A repo path for a page: as [`crate::extract::RepoRef`], refused with an HTML page.
pub struct WebRepo(pub crate::extract::RepoRef);

impl axum::extract::FromRequestParts<AppState> for WebRepo {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, HtmlError> {
        Ok(WebRepo(crate::extract::RepoRef::from_request_parts(parts, state).await?))
    }
}
