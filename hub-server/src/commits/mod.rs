//! The NDJSON commit (`POST /api/{t}s/{ns}/{name}/commit/{rev}`): all or nothing. Every object
//! is written before the branch moves; the ref moves by compare-and-swap under the repo lock.
//!
//! This file holds the commit's types and its orchestration (storing content, taking the repo
//! lock); parsing the body is in `ndjson`, the git write in `write`.

mod ndjson;
mod write;

pub use ndjson::parse_body;

use crate::app::AppState;
use crate::attributes::{LfsRules, LFS_SIZE_THRESHOLD};
use crate::auth::Caller;
use crate::content::{self, HeldObject};
use crate::db::RepoRow;
use crate::error::{ApiError, ApiResult};
use crate::git::{self, LfsPointer};
use crate::repos::Author;
use bytes::Bytes;
use git2::{Oid, Repository};
use write::{commit_blocking, final_attributes};

#[derive(Debug, Default)]
pub struct CommitHeader {
    pub summary: String,
    pub description: String,
    pub parent_commit: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Content {
    /// Inline bytes already written to the git object database.
    Blob { oid: Oid, size: u64 },
    /// Large-file content the repo holds (or will, once the commit lands).
    Lfs(HeldObject),
}

#[derive(Debug, Clone)]
pub enum CommitOp {
    Add { path: String, content: Content },
    DeleteFile { path: String },
    DeleteFolder { path: String },
}

impl CommitOp {
    pub fn path(&self) -> &str {
        match self {
            CommitOp::Add { path, .. } | CommitOp::DeleteFile { path } | CommitOp::DeleteFolder { path } => path,
        }
    }
}

/// Where a commit goes: a branch, an existing PR ref, or a new PR opened from a branch.
#[derive(Debug, Clone)]
pub enum Target {
    Ref(String),
    NewPullRequest { from: String },
}

#[derive(Debug)]
pub struct CommitOutcome {
    pub commit: Oid,
    pub pr_number: Option<u64>,
}

/// The content an `lfsFile` line (or pointer text) names, if it may enter this repo; otherwise
/// the answer is the same whether or not any other repo has it.
async fn resolve_lfs(state: &AppState, caller: &Caller, repo_id: &str, path: &str, oid: &str, size: Option<u64>) -> ApiResult<HeldObject> {
    let missing = || {
        ApiError::bad_request(format!(
            "LFS object {oid} for {path:?} is not stored; upload it through the LFS batch API (or Xet) before committing"
        ))
    };
    let obj = content::resolve_for_write(state, caller, repo_id, oid).await?.ok_or_else(missing)?;
    if size.is_some_and(|s| s != obj.size) {
        return Err(ApiError::bad_request(format!("LFS object {oid} has {} bytes, not {:?}", obj.size, size)));
    }
    Ok(obj)
}

/// Stores the bytes of an added file: in git, or in LFS storage when large. Text that is an LFS
/// pointer names content instead, which must be resolvable like an `lfsFile` line.
#[tracing::instrument(skip_all, fields(repo = %repo_id, path = %path, bytes = data.len()))]
pub async fn store_inline(state: &AppState, caller: &Caller, repo_id: &str, path: &str, data: Vec<u8>) -> ApiResult<Content> {
    if let Some(pointer) = LfsPointer::parse(&data) {
        return Ok(Content::Lfs(resolve_lfs(state, caller, repo_id, path, &pointer.oid, Some(pointer.size)).await?));
    }
    if data.len() as u64 >= LFS_SIZE_THRESHOLD {
        let (size, oid) = state.storage.put_content(Bytes::from(data)).await?;
        state.db.record_lfs_object(&oid, size).await?;
        return Ok(Content::Lfs(HeldObject { oid, size, xet_hash: None }));
    }
    let size = data.len() as u64;
    let oid = state.with_git(repo_id, move |g| Ok(g.blob(&data)?)).await?;
    Ok(Content::Blob { oid, size })
}

/// Resolves where a commit to `rev` goes; tags and commit ids are not writable.
pub fn target_for(repo: &Repository, rev: &str, create_pr: bool) -> ApiResult<Target> {
    let refname = if rev.starts_with("refs/pr/") || rev.starts_with("refs/heads/") { rev.to_string() } else { format!("refs/heads/{rev}") };
    if repo.find_reference(&refname).is_err() {
        if git::resolve_revision(repo, rev).is_some() {
            return Err(ApiError::bad_request(format!("cannot commit to {rev:?}: only branches can receive commits")));
        }
        return Err(ApiError::revision_not_found(rev));
    }
    Ok(if create_pr { Target::NewPullRequest { from: refname } } else { Target::Ref(refname) })
}

/// Inline files that the commit's final `.gitattributes` routes to LFS (hf-hub 1.0 inlines
/// everything when Xet is off) are stored as LFS objects first, one at a time, from the async
/// side: the git work that follows then never waits on storage from a blocking thread. Each is
/// recorded in the repo before any ref can point at its pointer. Called under the repo lock.
async fn store_lfs_routed(
    state: &AppState,
    repo_id: &str,
    rev: &str,
    create_pr: bool,
    ops: Vec<CommitOp>,
) -> ApiResult<(Vec<CommitOp>, std::collections::HashMap<Oid, HeldObject>)> {
    let rev = rev.to_string();
    let (ops, routed) = state
        .with_git(repo_id, move |g| {
            let source = match target_for(g, &rev, create_pr)? {
                Target::Ref(r) => r,
                Target::NewPullRequest { from } => from,
            };
            let head = git::branch_head(g, &source).ok_or_else(|| ApiError::revision_not_found(&source))?;
            let rules = LfsRules::parse(&final_attributes(g, head, &ops)?);
            let mut routed: Vec<Oid> = Vec::new();
            for op in &ops {
                if let CommitOp::Add { path, content: Content::Blob { oid, size } } = op {
                    if *size > 0 && rules.is_lfs(path) && !routed.contains(oid) {
                        routed.push(*oid);
                    }
                }
            }
            Ok((ops, routed))
        })
        .await?;
    let mut stored = std::collections::HashMap::new();
    for blob in routed {
        let data = state.with_git(repo_id, move |g| Ok(Bytes::copy_from_slice(g.find_blob(blob)?.content()))).await?;
        let (size, oid) = state.storage.put_content(data).await?;
        state.db.record_lfs_object(&oid, size).await?;
        let held = HeldObject { oid, size, xet_hash: None };
        content::record(state, repo_id, &held).await?;
        stored.insert(blob, held);
    }
    Ok((ops, stored))
}

/// Commits `ops` to `rev` as the caller; serialized per repo.
#[tracing::instrument(skip_all, fields(repo = %repo.id, rev = %rev, ops = ops.len(), create_pr))]
pub async fn commit(
    state: &AppState,
    repo: &RepoRow,
    rev: &str,
    create_pr: bool,
    header: CommitHeader,
    ops: Vec<CommitOp>,
    author: Author,
) -> ApiResult<CommitOutcome> {
    let rev = rev.to_string();
    state
        .locked(&repo.id, async {
            // The repo holds what it references before any ref can point at it.
            for op in &ops {
                if let CommitOp::Add { content: Content::Lfs(obj), .. } = op {
                    content::record(state, &repo.id, obj).await?;
                }
            }
            let (ops, stored) = store_lfs_routed(state, &repo.id, &rev, create_pr, ops).await?;
            let outcome = state
                .with_git(&repo.id, move |g| {
                    let target = target_for(g, &rev, create_pr)?;
                    commit_blocking(&stored, g, &target, &header, &ops, &author.signature()?)
                })
                .await?;
            crate::repos::record_head(state, &repo.id).await?;
            Ok(outcome)
        })
        .await
}

/// Replaces a branch's history with one commit holding its current tree.
#[tracing::instrument(skip_all, fields(repo = %repo.id, branch = %branch))]
pub async fn super_squash(state: &AppState, repo: &RepoRow, branch: &str, message: &str, author: Author) -> ApiResult<Oid> {
    let branch = branch.to_string();
    let message = message.to_string();
    state
        .locked(&repo.id, async {
            let commit = state
                .with_git(&repo.id, move |g| {
                    let refname = format!("refs/heads/{branch}");
                    let Some(head) = git::branch_head(g, &refname) else {
                        if git::resolve_revision(g, &branch).is_some() {
                            return Err(ApiError::bad_request("only branches can be squashed"));
                        }
                        return Err(ApiError::revision_not_found(&branch));
                    };
                    let tree = g.find_commit(head)?.tree()?;
                    let sig = author.signature()?;
                    let commit = g.commit(None, &sig, &sig, &message, &tree, &[])?;
                    g.reference_matching(&refname, commit, true, head, "super-squash")
                        .map_err(|_| ApiError::conflict(format!("{refname} moved while squashing; retry")))?;
                    Ok(commit)
                })
                .await?;
            crate::repos::record_head(state, &repo.id).await?;
            Ok(commit)
        })
        .await
}
