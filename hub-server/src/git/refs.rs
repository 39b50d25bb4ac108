//! Branches, tags and pull-request refs: resolving a revision to its commit, listing refs,
//! numbering new pull requests, and clearing ref locks a killed writer left.

use git2::{Oid, Repository};

#[derive(Debug, Clone)]
pub struct RefInfo {
    pub name: String,
    pub refname: String,
    pub target: String,
}

/// The ref a repository's HEAD names (its default branch).
pub fn default_branch(repo: &Repository) -> String {
    repo.find_reference("HEAD").ok().and_then(|h| h.symbolic_target().map(str::to_string)).unwrap_or_else(|| "refs/heads/main".to_string())
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `rev` could name a branch, tag, full ref or commit (no revision expressions, nothing
/// that could step outside `refs/`).
pub fn is_revision_syntax(rev: &str) -> bool {
    !(rev.is_empty() || rev.contains("..") || rev.contains(['\0', ' ', '~', '^', ':', '\\', '*', '?', '[']))
}

/// A branch, tag, `refs/…` name, or full/short commit id → the commit it names.
pub fn resolve_revision(repo: &Repository, rev: &str) -> Option<Oid> {
    if !is_revision_syntax(rev) {
        return None;
    }
    let candidates: Vec<String> =
        if rev.starts_with("refs/") { vec![rev.to_string()] } else { vec![format!("refs/heads/{rev}"), format!("refs/tags/{rev}")] };
    for name in candidates {
        if let Ok(reference) = repo.find_reference(&name) {
            if let Ok(commit) = reference.peel_to_commit() {
                return Some(commit.id());
            }
        }
    }
    if (7..=40).contains(&rev.len()) && is_hex(rev) {
        let object = repo.revparse_single(rev).ok()?;
        return object.peel_to_commit().ok().map(|c| c.id());
    }
    None
}

/// The commit a branch points at.
pub fn branch_head(repo: &Repository, branch_ref: &str) -> Option<Oid> {
    repo.find_reference(branch_ref).ok()?.peel_to_commit().ok().map(|c| c.id())
}

fn list_refs(repo: &Repository, glob: &str, strip: &str) -> Result<Vec<RefInfo>, git2::Error> {
    let mut out = Vec::new();
    for r in repo.references_glob(glob)? {
        let r = r?;
        let Some(refname) = r.name().map(str::to_string) else { continue };
        let Ok(commit) = r.peel_to_commit() else { continue };
        let name = refname.strip_prefix(strip).unwrap_or(&refname).to_string();
        out.push(RefInfo { name, refname, target: commit.id().to_string() });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn branches(repo: &Repository) -> Result<Vec<RefInfo>, git2::Error> {
    list_refs(repo, "refs/heads/*", "refs/heads/")
}

pub fn tags(repo: &Repository) -> Result<Vec<RefInfo>, git2::Error> {
    list_refs(repo, "refs/tags/*", "refs/tags/")
}

pub fn pull_requests(repo: &Repository) -> Result<Vec<RefInfo>, git2::Error> {
    list_refs(repo, "refs/pr/*", "")
}

/// The next free pull-request number (`refs/pr/N`).
pub fn next_pr_number(repo: &Repository) -> Result<u64, git2::Error> {
    let max = pull_requests(repo)?
        .iter()
        .filter_map(|r| r.refname.strip_prefix("refs/pr/").and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0);
    Ok(max + 1)
}

/// Removes the ref lock files (`HEAD.lock`, `packed-refs.lock`, `refs/**/*.lock`) of a bare
/// repository. Only for a caller that holds the repo's write lock: then no live writer owns them.
pub fn remove_stale_ref_locks(repo_dir: &std::path::Path) {
    fn walk(dir: &std::path::Path) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                remove(&path);
            }
        }
    }
    fn remove(path: &std::path::Path) {
        if std::fs::remove_file(path).is_ok() {
            tracing::warn!("removed {} (left by a writer that was killed mid-update)", path.display());
        }
    }
    for name in ["HEAD.lock", "packed-refs.lock"] {
        let path = repo_dir.join(name);
        if path.exists() {
            remove(&path);
        }
    }
    walk(&repo_dir.join("refs"));
}
