//! Changing a repo from the browser: likes, uploads (through the same commit path as the API),
//! and the settings page (visibility, move, branches and tags, delete with typed
//! confirmation). Every form is CSRF-checked; the API's permission rules apply.

use super::web::{page, repo_view_for, Nav, PageResult, RepoView};
use crate::app::AppState;
use crate::auth::Caller;
use crate::commits::{self, CommitHeader, CommitOp};
use crate::db::Role;
use crate::error::ApiError;
use crate::git;
use crate::names::{validate_repo_path, RepoName};
use crate::refs::{self, RefKind};
use crate::repos::{find_readable, find_with_role, signature};
use askama::Template;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::collections::HashMap;
use tower_sessions::Session;

/// Largest file accepted from the browser form (larger ones: use the CLI or git-lfs).
const MAX_BROWSER_FILE: usize = 100 * 1024 * 1024;

async fn check_csrf(session: Option<&Session>, sent: &str) -> Result<(), ApiError> {
    match session {
        Some(s) => super::web_accounts::check_csrf(s, sent).await,
        None => Err(ApiError::forbidden("This form expired or did not come from this site; reload the page and try again.")),
    }
}

fn require_user(caller: &Caller) -> Result<(), ApiError> {
    if caller.user.is_none() {
        return Err(ApiError::unauthorized("Log in first."));
    }
    Ok(())
}

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

pub async fn settings_page(state: &AppState, caller: &Caller, nav: &Nav, name: &RepoName, uri: &Uri) -> PageResult {
    let row = find_with_role(state, caller, name, uri, Role::Admin).await?;
    let (branches, tags) = state.with_git(&row.id, |g| Ok((git::branches(g)?, git::tags(g)?))).await?;
    let message = crate::extract::QueryPairs::parse(uri.query()).get("done").map(|d| format!("Done: {d}."));
    page(SettingsPage {
        nav: nav.clone(),
        repo: repo_view_for(state, caller, &row, "main").await?,
        tab: "settings",
        message,
        branches: branches.into_iter().map(|b| b.name).collect(),
        tags: tags.into_iter().map(|t| t.name).collect(),
    })
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    error: Option<String>,
}

pub async fn upload_page(state: &AppState, caller: &Caller, nav: &Nav, name: &RepoName, uri: &Uri) -> PageResult {
    let row = find_with_role(state, caller, name, uri, Role::Write).await?;
    page(UploadPage { nav: nav.clone(), repo: repo_view_for(state, caller, &row, "main").await?, tab: "upload", error: None })
}

/// POSTs under a repo's web path.
pub async fn post(state: &AppState, caller: &Caller, name: &RepoName, action: &[&str], req: Request) -> PageResult {
    let session = req.extensions().get::<Session>().cloned();
    let uri = req.uri().clone();
    let base = format!("/{}", name.web_path());
    if action == ["upload"] {
        return upload(state, caller, name, &uri, session.as_ref(), req).await;
    }
    let form: HashMap<String, String> = axum::extract::Form::<HashMap<String, String>>::from_request(req, state)
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid form: {e}")))?
        .0;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("").trim().to_string();
    check_csrf(session.as_ref(), &field("csrf")).await?;
    require_user(caller)?;
    let done = |what: &str| Ok(Redirect::to(&format!("{base}/settings?done={}", what.replace(' ', "+"))).into_response());
    match action {
        ["like"] => {
            let row = find_readable(state, caller, name, &uri).await?;
            let user = caller.user.as_ref().expect("checked above");
            state.db.toggle_like(user.account.id, &row.id).await?;
            Ok(Redirect::to(&base).into_response())
        }
        ["settings", "visibility"] => {
            let row = find_with_role(state, caller, name, &uri, Role::Admin).await?;
            let private = match field("visibility").as_str() {
                "private" => true,
                "public" => false,
                _ => return Err(ApiError::bad_request("visibility is public or private")),
            };
            state.db.set_private(&row.id, private).await?;
            done(if private { "now private" } else { "now public" })
        }
        ["settings", "move"] => {
            let row = find_with_role(state, caller, name, &uri, Role::Admin).await?;
            let to = field("to");
            let (ns, new) = to.split_once('/').ok_or_else(|| ApiError::bad_request("the new id is namespace/name"))?;
            let target = RepoName::new(row.name.repo_type, ns, new)?;
            crate::repos::rename(state, caller, &row, &target).await?;
            Ok(Redirect::to(&format!("/{}/settings?done=moved", target.web_path())).into_response())
        }
        ["settings", "delete"] => {
            let row = find_with_role(state, caller, name, &uri, Role::Admin).await?;
            if field("confirm") != row.name.id() {
                return Err(ApiError::bad_request(format!("to delete, type the repository id {} exactly", row.name.id())));
            }
            crate::repos::delete(state, &row).await?;
            Ok(Redirect::to("/").into_response())
        }
        ["settings", action @ ("branch" | "tag" | "branch-delete" | "tag-delete")] => {
            let row = find_with_role(state, caller, name, &uri, Role::Write).await?;
            let ref_name = field("name");
            let kind = if action.starts_with("tag") { RefKind::Tag } else { RefKind::Branch };
            let creating = !action.ends_with("-delete");
            if creating {
                let from = Some(field("from")).filter(|f| !f.is_empty()).unwrap_or_else(|| "main".to_string());
                refs::create(state, &row, kind, &ref_name, &from, None).await?;
            } else {
                refs::delete(state, &row, kind, &ref_name).await?;
            }
            done(&format!(
                "{} {ref_name} {}",
                if kind == RefKind::Tag { "tag" } else { "branch" },
                if creating { "created" } else { "deleted" }
            ))
        }
        _ => Err(ApiError::not_found("no such action")),
    }
}

#[derive(Deserialize, Default)]
struct UploadFields {
    folder: String,
    message: String,
}

/// The whole upload form: several files of up to MAX_BROWSER_FILE each.
const MAX_UPLOAD_FORM: usize = 1024 * 1024 * 1024;

/// Sets the body limit extractors apply to this request (what the `DefaultBodyLimit` layer does
/// for a route; the upload form is reached through the fallback dispatcher).
async fn with_body_limit(req: Request, limit: usize) -> Request {
    use tower::{Layer, ServiceExt};
    let pass = tower::service_fn(|req: Request| async move { Ok::<_, std::convert::Infallible>(req) });
    match axum::extract::DefaultBodyLimit::max(limit).layer(pass).oneshot(req).await {
        Ok(req) => req,
        Err(never) => match never {},
    }
}

/// A file of the upload form, on disk.
struct SpooledFile {
    name: String,
    tmp: tempfile::NamedTempFile,
    size: u64,
    sha256: String,
}

/// Stores a spooled file as a commit would: large ones stream into LFS storage (never whole in
/// memory), small ones go through the inline path (pointer text is checked there).
async fn store_spooled(
    state: &AppState,
    caller: &Caller,
    repo_id: &str,
    path: &str,
    file: SpooledFile,
) -> Result<commits::Content, ApiError> {
    if file.size >= crate::attributes::LFS_SIZE_THRESHOLD {
        let reader = tokio::fs::File::from_std(file.tmp.reopen()?);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
        state.storage.put_verified(&file.sha256, file.size, stream).await?;
        state.db.record_lfs_object(&file.sha256, file.size).await?;
        return Ok(commits::Content::Lfs(crate::content::HeldObject { oid: file.sha256, size: file.size, xet_hash: None }));
    }
    let data = tokio::fs::read(file.tmp.path()).await?;
    commits::store_inline(state, caller, repo_id, path, data).await
}

/// `POST /{repo}/upload` (multipart form): files become one commit on `main`.
async fn upload(state: &AppState, caller: &Caller, name: &RepoName, uri: &Uri, session: Option<&Session>, req: Request) -> PageResult {
    require_user(caller)?;
    let row = find_with_role(state, caller, name, uri, Role::Write).await?;
    // axum caps extractor bodies at 2 MB; this form carries files, each checked below.
    let req = with_body_limit(req, MAX_UPLOAD_FORM).await;
    let mut multipart =
        Multipart::from_request(req, state).await.map_err(|e| ApiError::bad_request(format!("invalid upload form: {e}")))?;
    let mut fields = UploadFields::default();
    let mut csrf_checked = false;
    let spool = state.settings.data_dir.join("tmp");
    tokio::fs::create_dir_all(&spool).await?;
    let mut files: Vec<SpooledFile> = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(|e| ApiError::bad_request(format!("invalid upload form: {e}")))? {
        let key = field.name().unwrap_or("").to_string();
        if key == "file" {
            // The form's token comes first: nothing from a forged form is read, let alone kept.
            if !csrf_checked {
                return Err(ApiError::forbidden(
                    "This form did not come from this site (its token must precede the files); reload the page.",
                ));
            }
            let file_name = field.file_name().unwrap_or("").to_string();
            // Spooled to disk and hashed on the way: memory stays flat whatever the files' sizes.
            let tmp = tempfile::NamedTempFile::new_in(&spool)?;
            let mut out = tokio::fs::File::from_std(tmp.reopen()?);
            let (mut size, mut sha) = (0usize, <sha2::Sha256 as sha2::Digest>::new());
            while let Some(chunk) = field.chunk().await.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))? {
                size += chunk.len();
                if size > MAX_BROWSER_FILE {
                    return Err(ApiError::payload_too_large(format!(
                        "{file_name} is over {} MB: upload large files with `hub upload` or git-lfs",
                        MAX_BROWSER_FILE / 1_000_000
                    )));
                }
                sha2::Digest::update(&mut sha, &chunk);
                tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await?;
            }
            tokio::io::AsyncWriteExt::flush(&mut out).await?;
            if !file_name.is_empty() {
                files.push(SpooledFile { name: file_name, tmp, size: size as u64, sha256: hex::encode(sha2::Digest::finalize(sha)) });
            }
        } else {
            let value = field.text().await.map_err(|e| ApiError::bad_request(format!("invalid upload form: {e}")))?;
            match key.as_str() {
                "csrf" => {
                    check_csrf(session, &value).await?;
                    csrf_checked = true;
                }
                "folder" => fields.folder = value.trim().trim_matches('/').to_string(),
                "message" => fields.message = value,
                _ => {}
            }
        }
    }
    if !csrf_checked {
        check_csrf(session, "").await?;
    }
    if files.is_empty() {
        return Err(ApiError::bad_request("choose at least one file"));
    }
    let mut ops = Vec::new();
    for file in files {
        let base_name = file.name.rsplit(['/', '\\']).next().unwrap_or(&file.name).to_string();
        let path = if fields.folder.is_empty() { base_name } else { format!("{}/{base_name}", fields.folder) };
        validate_repo_path(&path)?;
        let content = store_spooled(state, caller, &row.id, &path, file).await?;
        ops.push(CommitOp::Add { path, content });
    }
    let summary =
        if fields.message.trim().is_empty() { "Upload files from the browser".to_string() } else { fields.message.trim().to_string() };
    let header = CommitHeader { summary, description: String::new(), parent_commit: None };
    commits::commit(state, &row, "main", false, header, ops, signature(caller)?).await?;
    Ok((StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, format!("/{}/tree/main", row.name.web_path()))]).into_response())
}
