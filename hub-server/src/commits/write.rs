//! The git side of a commit, run on a blocking thread under the repo lock: turns the operations
//! into tree edits on the target's head, writes the commit and moves the ref.

use super::{CommitHeader, CommitOp, CommitOutcome, Content, Target};
use crate::attributes::{exact_lfs_rule, LfsRules};
use crate::content::HeldObject;
use crate::error::{ApiError, ApiResult};
use crate::git::{self, LfsPointer, TreeError, TreeOp};
use git2::{FileMode, Oid, Repository, Signature};
use std::collections::HashMap;

/// The `.gitattributes` this commit leaves behind: the one it adds, or the current one.
pub(super) fn final_attributes(repo: &Repository, base: Oid, ops: &[CommitOp]) -> ApiResult<String> {
    let mut text = git::read_file(repo, base, ".gitattributes")?;
    for op in ops {
        match op {
            CommitOp::Add { path, content: Content::Blob { oid, .. } } if path == ".gitattributes" => {
                text = Some(repo.find_blob(*oid)?.content().to_vec());
            }
            CommitOp::DeleteFile { path } if path == ".gitattributes" => text = None,
            _ => {}
        }
    }
    Ok(String::from_utf8_lossy(&text.unwrap_or_default()).into_owned())
}

/// Applies the operations on top of the target's head and moves the ref. Blocking.
pub(super) fn commit_blocking(
    stored: &HashMap<Oid, HeldObject>,
    repo: &Repository,
    target: &Target,
    header: &CommitHeader,
    ops: &[CommitOp],
    sig: &Signature,
) -> ApiResult<CommitOutcome> {
    let head = checked_head(repo, target, header)?;
    let base_commit = repo.find_commit(head)?;
    let tree_ops = tree_ops(stored, repo, head, ops)?;
    let tree = git::apply_ops(repo, Some(base_commit.tree_id()), tree_ops).map_err(|e| tree_error(e, head))?;
    let tree = repo.find_tree(tree)?;
    let commit = repo.commit(None, sig, sig, &commit_message(header), &tree, &[&base_commit])?;
    let log_message = format!("commit: {}", header.summary.trim());
    let pr_number = move_ref(repo, target, commit, head, &log_message)?;
    Ok(CommitOutcome { commit, pr_number })
}

/// The head of the branch the commit builds on, if it is the parent the header names (when it
/// names one).
fn checked_head(repo: &Repository, target: &Target, header: &CommitHeader) -> ApiResult<Oid> {
    let source_ref = match target {
        Target::Ref(r) => r.clone(),
        Target::NewPullRequest { from } => from.clone(),
    };
    let head = git::branch_head(repo, &source_ref).ok_or_else(|| ApiError::revision_not_found(&source_ref))?;
    if let Some(parent) = &header.parent_commit {
        if !head.to_string().starts_with(&parent.to_ascii_lowercase()) {
            return Err(ApiError::new(
                axum::http::StatusCode::PRECONDITION_FAILED,
                format!("parentCommit {parent} is not the head of {source_ref} ({head}); pull the latest revision and retry"),
            ));
        }
    }
    Ok(head)
}

/// The tree edits of the operations, with an LFS rule added to `.gitattributes` for every LFS
/// file that no rule tracks.
fn tree_ops(stored: &HashMap<Oid, HeldObject>, repo: &Repository, head: Oid, ops: &[CommitOp]) -> ApiResult<Vec<TreeOp>> {
    let rules_text = final_attributes(repo, head, ops)?;
    let rules = LfsRules::parse(&rules_text);
    let mut tree_ops = Vec::with_capacity(ops.len() + 1);
    let mut untracked_lfs: Vec<String> = Vec::new();
    for op in ops {
        tree_ops.push(match op {
            CommitOp::Add { path, content } => {
                let blob = match content {
                    // Inline content that the attributes route to LFS is stored as LFS, as
                    // hf-hub 1.0 (which inlines everything when Xet is off) relies on.
                    Content::Blob { oid, size } if *size > 0 && rules.is_lfs(path) => {
                        // Stored by `store_lfs_routed` before this section (under the same lock,
                        // so the attributes it read are these).
                        let held = stored.get(oid).ok_or_else(|| ApiError::internal(format!("{path}: LFS content was not stored")))?;
                        repo.blob(LfsPointer { oid: held.oid.clone(), size: held.size }.encode().as_bytes())?
                    }
                    Content::Blob { oid, .. } => *oid,
                    Content::Lfs(obj) => {
                        // Keep git clients consistent: an LFS file no rule tracks gets its own rule.
                        if !rules.is_lfs(path) && !untracked_lfs.contains(path) {
                            untracked_lfs.push(path.clone());
                        }
                        repo.blob(LfsPointer { oid: obj.oid.clone(), size: obj.size }.encode().as_bytes())?
                    }
                };
                TreeOp::Put { path: path.clone(), blob, mode: FileMode::Blob }
            }
            CommitOp::DeleteFile { path } => TreeOp::DeleteFile { path: path.clone() },
            CommitOp::DeleteFolder { path } => TreeOp::DeleteFolder { path: path.clone() },
        });
    }
    if !untracked_lfs.is_empty() {
        let mut text = rules_text;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for p in &untracked_lfs {
            text.push_str(&exact_lfs_rule(p));
        }
        tree_ops.push(TreeOp::Put { path: ".gitattributes".into(), blob: repo.blob(text.as_bytes())?, mode: FileMode::Blob });
    }
    Ok(tree_ops)
}

/// A failed tree edit as the API reports it.
fn tree_error(e: TreeError, head: Oid) -> ApiError {
    match &e {
        TreeError::MissingFile(p) | TreeError::MissingFolder(p) => {
            let mut err = ApiError::entry_not_found(p, &head.to_string());
            err.message = e.to_string();
            err
        }
        TreeError::Conflict(_) => ApiError::bad_request(e.to_string()),
        TreeError::Git(g) => ApiError::internal(g),
    }
}

/// The commit message: the title, then the description (if any) after a blank line.
fn commit_message(header: &CommitHeader) -> String {
    if header.description.trim().is_empty() {
        header.summary.trim().to_string()
    } else {
        format!("{}\n\n{}", header.summary.trim(), header.description.trim())
    }
}

/// Points the target at `commit`: the branch by compare-and-swap from `head`, or a new PR ref
/// (whose number is returned).
fn move_ref(repo: &Repository, target: &Target, commit: Oid, head: Oid, log_message: &str) -> ApiResult<Option<u64>> {
    Ok(match target {
        Target::Ref(r) => {
            // Compare-and-swap: refuses if another writer (another process too) moved the ref.
            repo.reference_matching(r, commit, true, head, log_message).map_err(|e| {
                if e.code() == git2::ErrorCode::Modified || e.code() == git2::ErrorCode::Locked {
                    ApiError::conflict(format!("{r} moved while committing; retry"))
                } else {
                    ApiError::internal(e)
                }
            })?;
            None
        }
        Target::NewPullRequest { .. } => {
            let mut n = git::next_pr_number(repo)?;
            loop {
                let name = format!("refs/pr/{n}");
                match repo.reference(&name, commit, false, log_message) {
                    Ok(_) => break Some(n),
                    Err(e) if e.code() == git2::ErrorCode::Exists => n += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    })
}
