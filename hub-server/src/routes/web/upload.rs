//! Uploads from the browser (`/{repo}/upload`): files become one commit on `main`, through the
//! same commit path as the API (LFS rules included). The form's token is checked before any
//! file is read; files are spooled to disk, so memory stays flat whatever their size.

use super::session::{check_csrf, Web};
use super::{page, repo_view_for, Nav, PageResult, RepoView, WebRepo};
use crate::app::AppState;
use crate::auth::Caller;
use crate::commits::{self, CommitHeader, CommitOp, Content};
use crate::db::Role;
use crate::error::ApiError;
use crate::names::validate_repo_path;
use crate::repos::{find_with_role, signature};
use askama::Template;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use tower_sessions::Session;

/// Largest file accepted from the browser form (larger ones: use the CLI or git-lfs).
const MAX_BROWSER_FILE: usize = 100 * 1024 * 1024;
/// The whole upload form: several files of up to MAX_BROWSER_FILE each (the route's body limit).
pub const MAX_UPLOAD_FORM: usize = 1024 * 1024 * 1024;

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    error: Option<String>,
}

pub async fn upload_page(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo) -> PageResult {
    let row = find_with_role(&state, &web.caller, &repo.name, &repo.uri, Role::Write).await?;
    page(UploadPage { repo: repo_view_for(&state, &web.caller, &row, "main").await?, nav: web.nav, tab: "upload", error: None })
}

/// A file of the upload form, on disk.
struct SpooledFile {
    name: String,
    tmp: tempfile::NamedTempFile,
    size: u64,
    sha256: String,
}

/// What the form said besides its files.
#[derive(Default)]
struct UploadForm {
    folder: String,
    message: String,
    files: Vec<SpooledFile>,
}

/// `POST /{repo}/upload` (multipart form).
pub async fn upload(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo, multipart: Multipart) -> PageResult {
    if web.caller.user.is_none() {
        return Err(ApiError::unauthorized("Log in first.").into());
    }
    let row = find_with_role(&state, &web.caller, &repo.name, &repo.uri, Role::Write).await?;
    let form = read_form(&state, &web.session, multipart).await?;
    if form.files.is_empty() {
        return Err(ApiError::bad_request("choose at least one file").into());
    }
    let mut ops = Vec::new();
    for file in form.files {
        let base_name = file.name.rsplit(['/', '\\']).next().unwrap_or(&file.name).to_string();
        let path = if form.folder.is_empty() { base_name } else { format!("{}/{base_name}", form.folder) };
        validate_repo_path(&path)?;
        let content = store_spooled(&state, &web.caller, &row.id, &path, file).await?;
        ops.push(CommitOp::Add { path, content });
    }
    let message = form.message.trim();
    let summary = if message.is_empty() { "Upload files from the browser".to_string() } else { message.to_string() };
    let header = CommitHeader { summary, description: String::new(), parent_commit: None };
    commits::commit(&state, &row, "main", false, header, ops, signature(&web.caller)?).await?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, format!("/{}/tree/main", row.name.web_path()))]).into_response())
}

/// Reads the form in order: its token first (a file before it is refused unread), then fields
/// and files, each file spooled to disk.
async fn read_form(state: &AppState, session: &Session, mut multipart: Multipart) -> Result<UploadForm, ApiError> {
    let invalid = |e: axum::extract::multipart::MultipartError| ApiError::bad_request(format!("invalid upload form: {e}"));
    let mut form = UploadForm::default();
    let mut csrf_checked = false;
    let spool = state.settings.data_dir.join("tmp");
    tokio::fs::create_dir_all(&spool).await?;
    while let Some(field) = multipart.next_field().await.map_err(invalid)? {
        match field.name().unwrap_or("") {
            "file" if !csrf_checked => {
                return Err(ApiError::forbidden(
                    "This form did not come from this site (its token must precede the files); reload the page.",
                ));
            }
            "file" => {
                if let Some(f) = spool_file(field, &spool).await? {
                    form.files.push(f);
                }
            }
            "csrf" => {
                check_csrf(session, &field.text().await.map_err(invalid)?).await?;
                csrf_checked = true;
            }
            "folder" => form.folder = field.text().await.map_err(invalid)?.trim().trim_matches('/').to_string(),
            "message" => form.message = field.text().await.map_err(invalid)?,
            _ => {}
        }
    }
    if !csrf_checked {
        check_csrf(session, "").await?;
    }
    Ok(form)
}

/// Writes one file field to a temporary file, hashing it on the way; None for an empty field.
async fn spool_file(mut field: Field<'_>, spool: &std::path::Path) -> Result<Option<SpooledFile>, ApiError> {
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let name = field.file_name().unwrap_or("").to_string();
    let tmp = tempfile::NamedTempFile::new_in(spool)?;
    let mut out = tokio::fs::File::from_std(tmp.reopen()?);
    let (mut size, mut sha) = (0usize, sha2::Sha256::new());
    while let Some(chunk) = field.chunk().await.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))? {
        size += chunk.len();
        if size > MAX_BROWSER_FILE {
            let limit = MAX_BROWSER_FILE / 1_000_000;
            return Err(ApiError::payload_too_large(format!("{name} is over {limit} MB: upload large files with `hub upload` or git-lfs")));
        }
        sha.update(&chunk);
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok((!name.is_empty()).then(|| SpooledFile { name, tmp, size: size as u64, sha256: hex::encode(sha.finalize()) }))
}

/// Stores a spooled file as a commit would: large ones stream into LFS storage (never whole in
/// memory), small ones go through the inline path (pointer text is checked there).
async fn store_spooled(state: &AppState, caller: &Caller, repo_id: &str, path: &str, file: SpooledFile) -> Result<Content, ApiError> {
    if file.size >= crate::attributes::LFS_SIZE_THRESHOLD {
        let reader = tokio::fs::File::from_std(file.tmp.reopen()?);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
        state.storage.put_verified(&file.sha256, file.size, stream).await?;
        state.db.record_lfs_object(&file.sha256, file.size).await?;
        return Ok(Content::Lfs(crate::content::HeldObject { oid: file.sha256, size: file.size, xet_hash: None }));
    }
    let data = tokio::fs::read(file.tmp.path()).await?;
    commits::store_inline(state, caller, repo_id, path, data).await
}
