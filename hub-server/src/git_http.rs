//! git's smart HTTP protocol, served by `git http-backend` behind the hub's access rules: fetches
//! need read access, pushes write access; a push holds the repo's write lock (so it serializes
//! with API commits) and its pre-receive hook gets what it needs to check the pushed objects.

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::{RepoRow, Role};
use crate::error::{ApiError, ApiResult};
use crate::names::RepoName;
use crate::repos::{find_readable, find_with_role};
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum GitService {
    UploadPack,
    ReceivePack,
}

/// One smart-HTTP request: the ref advertisement (`info/refs`) or the pack exchange.
pub struct GitRequest<'a> {
    pub service: GitService,
    pub advertisement: bool,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

/// The repo a git request may use, or why not (pushing needs credentials and write access).
async fn repo_for(state: &AppState, caller: &Caller, name: &RepoName, req: &GitRequest<'_>) -> ApiResult<std::sync::Arc<RepoRow>> {
    match req.service {
        GitService::UploadPack => find_readable(state, caller, name, req.uri).await,
        GitService::ReceivePack => {
            if !caller.is_authenticated() {
                return Err(ApiError::unauthorized("pushing needs credentials: any username, an access token as password"));
            }
            find_with_role(state, caller, name, req.uri, Role::Write).await
        }
    }
}

#[tracing::instrument(skip_all, fields(repo = %name.web_path()))]
pub async fn serve(state: &AppState, caller: &Caller, name: &RepoName, req: GitRequest<'_>, body: Body) -> ApiResult<Response> {
    let row = repo_for(state, caller, name, &req).await?;
    let header_str = |h: header::HeaderName| req.headers.get(h).and_then(|v| v.to_str().ok());
    let rel = state.git.relative_path(&row.id);
    let path_info = match (req.advertisement, req.service) {
        (true, _) => format!("/{rel}/info/refs"),
        (false, GitService::UploadPack) => format!("/{rel}/git-upload-pack"),
        (false, GitService::ReceivePack) => format!("/{rel}/git-receive-pack"),
    };
    let launcher = state.hook_bin();
    let cgi = crate::git::smart_http::CgiRequest {
        launcher: &launcher,
        method: req.method.as_str(),
        path_info,
        query: req.uri.query().unwrap_or(""),
        content_type: header_str(header::CONTENT_TYPE),
        content_encoding: header_str(header::CONTENT_ENCODING),
        content_length: header_str(header::CONTENT_LENGTH),
        git_protocol: req.headers.get("git-protocol").and_then(|v| v.to_str().ok()),
        remote_user: caller.name(),
        env: vec![
            (crate::hooks::HOOK_BIN_ENV, state.hook_bin().display().to_string()),
            (crate::hooks::HOOK_DATABASE_ENV, state.settings.database_url()),
            (crate::hooks::HOOK_REPO_ENV, row.id.clone()),
            (crate::hooks::HOOK_NAMESPACES_ENV, caller.visible_namespaces().join(",")),
        ],
        config: vec![("core.hooksPath", state.hooks_dir().display().to_string())],
    };
    let root = state.git.root().to_path_buf();
    if req.service == GitService::ReceivePack && !req.advertisement {
        // A push moves refs: serialize it with API commits, then record the new head.
        return state
            .locked(&row.id, async {
                let resp = crate::git::smart_http::run(&root, cgi, body, true).await?;
                crate::repos::record_head(state, &row.id).await?;
                Ok(resp)
            })
            .await;
    }
    crate::git::smart_http::run(&root, cgi, body, false).await
}
