//! Repositories: finding them under the privacy rules, creating, deleting, moving.

use crate::app::AppState;
use crate::attributes::default_gitattributes;
use crate::auth::Caller;
use crate::db::{is_unique_violation, RepoRow, Role};
use crate::error::{ApiError, ApiResult};
use crate::git;
use crate::names::{RepoName, RepoType};
use crate::read_cache::RefStamp;
use axum::http::{header, StatusCode, Uri};
use git2::{Oid, Repository, Signature};
use std::sync::Arc;

impl AppState {
    /// Runs blocking git work on a repository off the async runtime.
    pub async fn with_git<T, F>(&self, repo_id: &str, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Repository) -> ApiResult<T> + Send + 'static,
    {
        let git = self.git.clone();
        let repo_id = repo_id.to_string();
        tokio::task::spawn_blocking(move || {
            let repo = git.open(&repo_id)?;
            f(&repo)
        })
        .await?
    }

    /// The commit a revision names in a repo, or RevisionNotFound. Remembered while the files
    /// git keeps the ref in are unchanged (a few `stat`s instead of opening the repository).
    pub async fn resolve(&self, repo: &RepoRow, rev: &str) -> ApiResult<Oid> {
        let r = rev.to_string();
        if !git::is_revision_syntax(rev) {
            return Err(ApiError::revision_not_found(rev));
        }
        // Stamped before resolving: a ref moved meanwhile leaves the entry stale, not wrong.
        let stamp = RefStamp::of(&self.git.path(&repo.id), rev);
        if let Some(commit) = self.cache.commit(&repo.id, rev, &stamp) {
            return Ok(commit);
        }
        let commit = self.with_git(&repo.id, move |g| git::resolve_revision(g, &r).ok_or_else(|| ApiError::revision_not_found(&r))).await?;
        self.cache.put_commit(&repo.id, rev, commit, stamp);
        Ok(commit)
    }
}

/// Where a request for a moved repo should go: the same URL with the new name.
fn moved_location(uri: &Uri, old: &RepoName, new: &RepoName) -> String {
    let path = uri.path();
    let needle = format!("/{}/{}", old.namespace, old.name);
    let replacement = format!("/{}/{}", new.namespace, new.name);
    let mut out = None;
    let mut start = 0;
    while let Some(i) = path[start..].find(&needle) {
        let at = start + i;
        let after = &path[at + needle.len()..];
        if after.is_empty() || after.starts_with('/') || after.starts_with(".git") {
            out = Some(format!("{}{}{}", &path[..at], replacement, after));
            break;
        }
        start = at + 1;
    }
    // One leading slash: `//host/…` would send the client to another site.
    let mut location = format!("/{}", out.unwrap_or_else(|| new.web_path()).trim_start_matches('/'));
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    location
}

/// The repo a caller asks for, if they may see it. A private repo answers exactly as a missing
/// one; an old name of a moved repo answers with a relative 307 to the new name.
pub async fn find_readable(state: &AppState, caller: &Caller, name: &RepoName, uri: &Uri) -> ApiResult<Arc<RepoRow>> {
    let visible = |row: &RepoRow| caller.may_see_repo(&row.id) && (!row.private || caller.can_read_private(&row.name.namespace));
    if let Some(row) = find_repo(state, name).await? {
        if visible(&row) {
            return Ok(row);
        }
        return Err(ApiError::repo_not_found(caller.is_authenticated()));
    }
    if let Some(row) = state.db.find_redirect(name).await? {
        if visible(&row) {
            // Relative Location: hf-hub 1.0 and hf-hub 0.4 sync follow only host-less redirects.
            return Err(ApiError::new(StatusCode::TEMPORARY_REDIRECT, format!("Repository moved to {}", row.name.id()))
                .with_header(header::LOCATION, moved_location(uri, name, &row.name)));
        }
    }
    Err(ApiError::repo_not_found(caller.is_authenticated()))
}

/// A repo by name, from the read cache when it is still valid.
/// Shared, not copied: a row (card metadata included) is read on every request.
async fn find_repo(state: &AppState, name: &RepoName) -> ApiResult<Option<Arc<RepoRow>>> {
    let load = async { Ok::<_, sqlx::Error>(state.db.find_repo(name).await?.map(Arc::new)) };
    Ok(state.cache.remember_found(&state.cache.repos, name.clone(), load).await?)
}

/// The repo, if the caller may see it and has `role` in its namespace.
pub async fn find_with_role(state: &AppState, caller: &Caller, name: &RepoName, uri: &Uri, role: Role) -> ApiResult<Arc<RepoRow>> {
    let row = find_readable(state, caller, name, uri).await?;
    caller.require(&row.name.namespace, role)?;
    Ok(row)
}

/// Who a commit or tag is by (git2's `Signature` cannot cross threads, so it is made late).
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    pub fn signature(&self) -> Result<Signature<'static>, git2::Error> {
        Signature::now(&self.name, &self.email)
    }
}

pub fn signature(caller: &Caller) -> ApiResult<Author> {
    let user = caller.user.as_ref().ok_or_else(|| ApiError::unauthorized("authentication required"))?;
    let email = user.account.email.clone().unwrap_or_else(|| format!("{}@users.noreply.hub", user.account.name));
    Ok(Author { name: user.account.name.clone(), email })
}

pub fn repo_url(base: &str, name: &RepoName) -> String {
    format!("{base}/{}", name.web_path())
}

/// Creates a repo with a first commit on `main` holding the default `.gitattributes`.
#[tracing::instrument(skip_all, fields(repo = %name.web_path()))]
pub async fn create(state: &AppState, caller: &Caller, name: &RepoName, private: bool, base_url: &str) -> ApiResult<RepoRow> {
    caller.require_write(&name.namespace)?;
    let url = repo_url(base_url, name);
    let exists = || ApiError::conflict(format!("You already created this {} repo", name.repo_type.as_str())).with_url(url.clone());
    if state.db.find_repo(name).await?.is_some() {
        return Err(exists());
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let sig = signature(caller)?;
    let attributes = default_gitattributes(name.repo_type == RepoType::Dataset);
    let git_store = state.git.clone();
    let repo_id = id.clone();
    let sha = tokio::task::spawn_blocking(move || {
        git_store.create(&repo_id, &[(".gitattributes", attributes.as_bytes())], &sig.signature()?, "initial commit")
    })
    .await??;
    match state.db.insert_repo(&id, name, private, &sha.to_string()).await {
        Ok(row) => Ok(row),
        Err(e) => {
            let _ = state.git.delete(&id);
            if is_unique_violation(&e) {
                Err(exists())
            } else {
                Err(e.into())
            }
        }
    }
}

#[tracing::instrument(skip_all, fields(repo = %row.id))]
pub async fn delete(state: &AppState, row: &RepoRow) -> ApiResult<()> {
    // Metadata first: once the row is gone nothing can reach the git directory.
    state.db.delete_repo(&row.id).await?;
    let git_store = state.git.clone();
    let id = row.id.clone();
    tokio::task::spawn_blocking(move || git_store.delete(&id)).await??;
    Ok(())
}

#[tracing::instrument(skip_all, fields(repo = %row.id, to = %to.web_path()))]
pub async fn rename(state: &AppState, caller: &Caller, row: &RepoRow, to: &RepoName) -> ApiResult<()> {
    caller.require(&to.namespace, Role::Write)?;
    if state.db.find_repo(to).await?.is_some() {
        return Err(ApiError::conflict(format!("Repository {} already exists", to.id())));
    }
    match state.db.move_repo(row, to).await {
        Err(e) if is_unique_violation(&e) => Err(ApiError::conflict(format!("Repository {} already exists", to.id()))),
        other => Ok(other?),
    }
}

/// The default branch's head and the card metadata read from it (None: no default branch).
fn read_head(g: &Repository) -> ApiResult<Option<(Oid, crate::db::CardMeta)>> {
    let Some(head) = git::branch_head(g, &git::default_branch(g)) else { return Ok(None) };
    let readme = git::read_file(g, head, "README.md")?;
    Ok(Some((head, crate::card::card_meta(readme.as_deref().map(String::from_utf8_lossy).as_deref()))))
}

/// Records what a write (commit, push, squash, ref change) left: the default branch's head and
/// its card metadata, so the API and listings reflect it at once. The one place this happens.
#[tracing::instrument(skip_all, fields(repo = %repo_id))]
pub async fn record_head(state: &AppState, repo_id: &str) -> ApiResult<()> {
    match state.with_git(repo_id, read_head).await? {
        Some((head, card)) => state.db.record_head(repo_id, &head.to_string(), &card).await?,
        None => state.db.touch_repo(repo_id).await?,
    }
    Ok(())
}

/// Brings the metadata of every repo in line with its git head. A process killed between moving
/// a ref and recording it (or a push that bypassed the hub) leaves the database behind; git is
/// the truth, so nothing is lost. Run at start, in the background.
#[tracing::instrument(skip_all)]
pub async fn reconcile_heads(state: &AppState) -> ApiResult<usize> {
    let mut fixed = 0;
    for (id, recorded) in state.db.repo_heads().await? {
        let head = state.with_git(&id, |g| Ok(git::branch_head(g, &git::default_branch(g)))).await;
        let Ok(Some(head)) = head else { continue };
        if recorded.as_deref() == Some(head.to_string().as_str()) {
            continue;
        }
        record_head(state, &id).await?;
        fixed += 1;
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_locations_keep_the_rest_of_the_url() {
        let old = RepoName::new(RepoType::Model, "alice", "old").unwrap();
        let new = RepoName::new(RepoType::Model, "acme", "new").unwrap();
        let uri: Uri = "/alice/old/resolve/main/config.json?x=1".parse().unwrap();
        assert_eq!(moved_location(&uri, &old, &new), "/acme/new/resolve/main/config.json?x=1");
        let uri: Uri = "/api/models/alice/old/revision/main".parse().unwrap();
        assert_eq!(moved_location(&uri, &old, &new), "/api/models/acme/new/revision/main");
        let uri: Uri = "/alice/old.git/info/lfs/objects/batch".parse().unwrap();
        assert_eq!(moved_location(&uri, &old, &new), "/acme/new.git/info/lfs/objects/batch");
        let uri: Uri = "/alice/older/x".parse().unwrap();
        assert_eq!(moved_location(&uri, &old, &new), "/acme/new");
        // A path with a doubled slash stays on this site.
        let uri: Uri = "//alice/old/x".parse().unwrap();
        assert_eq!(moved_location(&uri, &old, &new), "/acme/new/x");
    }
}
