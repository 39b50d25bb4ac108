//! The read side: what a repo holds at a revision — its files, one entry, a directory page, the
//! history, a commit's diff, its refs. Routes ask here and never touch git themselves. What is
//! fixed for a commit (the file list, the card) is computed once per commit id and cached.

use crate::app::AppState;
use crate::db::{CardMeta, RepoRow};
use crate::error::{ApiError, ApiResult};
use crate::git;
/// What a revision's contents are made of, as routes see them.
pub use crate::git::{CommitInfo, Entry, LfsPointer, RefInfo};
/// A commit's id, as routes see it (they name no git2 type themselves).
pub type CommitId = git2::Oid;
use bytes::Bytes;
use git2::Oid;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A revision's files (recursive) and card metadata.
#[derive(Debug)]
pub struct Snapshot {
    pub commit: Oid,
    pub files: Vec<Entry>,
    pub card: CardMeta,
}

/// Snapshots kept in memory (immutable per commit, so any replica may keep them).
const SNAPSHOTS: usize = 256;
/// Larger file lists are not kept (each entry is ~150 bytes).
const MAX_CACHED_FILES: usize = 20_000;

#[derive(Default)]
pub struct SnapshotCache {
    map: Mutex<HashMap<(String, Oid), Arc<Snapshot>>>,
}

impl SnapshotCache {
    fn get(&self, repo_id: &str, commit: Oid) -> Option<Arc<Snapshot>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(&(repo_id.to_string(), commit)).cloned()
    }

    fn put(&self, repo_id: &str, snap: Arc<Snapshot>) {
        if snap.files.len() > MAX_CACHED_FILES {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SNAPSHOTS {
            map.clear();
        }
        map.insert((repo_id.to_string(), snap.commit), snap);
    }
}

/// The commit a revision names, or RevisionNotFound.
pub async fn commit_of(state: &AppState, row: &RepoRow, rev: &str) -> ApiResult<Oid> {
    state.resolve(row, rev).await
}

/// Every file of a revision, and its card metadata.
#[tracing::instrument(skip(state, row), fields(repo = %row.name.id()))]
#[tracing::instrument(skip_all, fields(repo = %row.id, rev = %rev))]
pub async fn snapshot(state: &AppState, row: &RepoRow, rev: &str) -> ApiResult<Arc<Snapshot>> {
    let commit = commit_of(state, row, rev).await?;
    if let Some(snap) = state.snapshots.get(&row.id, commit) {
        return Ok(snap);
    }
    let snap = state
        .with_git(&row.id, move |g| {
            let files = git::all_files(g, commit)?;
            // Parsed here, on the blocking thread, not on the async ones.
            let readme = git::read_file(g, commit, "README.md")?.map(|b| String::from_utf8_lossy(&b).into_owned());
            Ok(Snapshot { commit, files, card: crate::card::card_meta(readme.as_deref()) })
        })
        .await?;
    let snap = Arc::new(snap);
    state.snapshots.put(&row.id, snap.clone());
    Ok(snap)
}

/// The files of a commit named by id (listings), or none when it cannot be read.
pub async fn files_at(state: &AppState, row: &RepoRow, sha: &str) -> Vec<Entry> {
    snapshot(state, row, sha).await.map(|s| s.files.clone()).unwrap_or_default()
}

/// A file at a revision, with its bytes when it is small and in git (not LFS) and `with_bytes`.
pub async fn file(state: &AppState, row: &RepoRow, rev: &str, path: &str, with_bytes: bool) -> ApiResult<(Oid, Entry, Option<Bytes>)> {
    let commit = commit_of(state, row, rev).await?;
    let entry = match state.cache.entry(&row.id, commit, path) {
        Some(e) => e,
        None => {
            let p = path.to_string();
            let entry = state.with_git(&row.id, move |g| Ok(git::entry_at(g, commit, &p)?)).await?;
            let Some(e @ Entry::File { .. }) = entry else { return Err(ApiError::entry_not_found(path, &commit.to_string())) };
            state.cache.put_entry(&row.id, commit, path, e.clone());
            e
        }
    };
    let content = match &entry {
        Entry::File { blob, lfs: None, .. } if with_bytes => Some(blob_bytes(state, &row.id, *blob).await?),
        _ => None,
    };
    Ok((commit, entry, content))
}

/// A blob's bytes, small ones remembered (a blob id names its content for ever).
async fn blob_bytes(state: &AppState, repo_id: &str, blob: Oid) -> ApiResult<Bytes> {
    if let Some(b) = state.cache.blob(blob) {
        return Ok(b);
    }
    let bytes = state.with_git(repo_id, move |g| Ok(Bytes::copy_from_slice(g.find_blob(blob)?.content()))).await?;
    state.cache.put_blob(blob, bytes.clone());
    Ok(bytes)
}

/// A file's bytes for display: None when it is stored with LFS or larger than `max`.
pub async fn file_text(state: &AppState, row: &RepoRow, rev: &str, path: &str, max: u64) -> ApiResult<(u64, bool, Option<Vec<u8>>)> {
    let (rev, path) = (rev.to_string(), path.to_string());
    state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
            match git::entry_at(g, commit, &path)? {
                Some(Entry::File { blob, size, lfs, .. }) => {
                    let content = (lfs.is_none() && size <= max).then(|| g.find_blob(blob).map(|b| b.content().to_vec())).transpose()?;
                    Ok((size, lfs.is_some(), content))
                }
                _ => Err(ApiError::entry_not_found(&path, &commit.to_string())),
            }
        })
        .await
}

/// One page of a directory (or of everything under it), and whether more follow.
pub struct DirPage {
    pub commit: Oid,
    pub entries: Vec<Entry>,
    /// Each entry's last commit, when asked for.
    pub last_commits: Vec<Option<CommitInfo>>,
    pub more: bool,
}

/// How a directory page is cut and ordered.
#[derive(Debug, Clone, Copy)]
pub struct DirQuery {
    pub recursive: bool,
    pub offset: usize,
    pub limit: usize,
    pub with_commits: bool,
    /// Directories first, then files (the web page); otherwise git's order.
    pub dirs_first: bool,
}

#[tracing::instrument(skip(state, row), fields(repo = %row.name.id()))]
#[tracing::instrument(skip_all, fields(repo = %row.id, rev = %rev, dir = %dir))]
pub async fn dir_page(state: &AppState, row: &RepoRow, rev: &str, dir: &str, q: DirQuery) -> ApiResult<DirPage> {
    let (rev, dir) = (rev.to_string(), dir.to_string());
    state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
            let tree = match git::entry_at(g, commit, &dir)? {
                Some(Entry::Dir { tree, .. }) => tree,
                _ => return Err(ApiError::entry_not_found(&dir, &commit.to_string())),
            };
            let mut all = Vec::new();
            git::list_dir(g, tree, &dir, q.recursive, &mut all)?;
            if q.dirs_first {
                all.sort_by_key(|e| (!matches!(e, Entry::Dir { .. }), e.path().to_string()));
            }
            let more = all.len() > q.offset + q.limit;
            let entries: Vec<Entry> = all.into_iter().skip(q.offset).take(q.limit).collect();
            let last_commits = if q.with_commits {
                let paths: Vec<String> = entries.iter().map(|e| e.path().to_string()).collect();
                git::last_commits(g, commit, &paths)?
            } else {
                vec![None; entries.len()]
            };
            Ok(DirPage { commit, entries, last_commits, more })
        })
        .await
}

/// The entries among `paths` that exist at a revision (others are left out), with last commits
/// when asked for.
pub async fn paths_info(
    state: &AppState,
    row: &RepoRow,
    rev: &str,
    paths: Vec<String>,
    expand: bool,
) -> ApiResult<(Vec<Entry>, Vec<Option<CommitInfo>>)> {
    let rev = rev.to_string();
    state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
            let mut entries = Vec::new();
            for p in &paths {
                let p = p.trim_matches('/');
                if p.is_empty() || crate::names::validate_repo_path(p).is_err() {
                    continue;
                }
                if let Some(e) = git::entry_at(g, commit, p)? {
                    entries.push(e);
                }
            }
            let commits = if expand {
                let ps: Vec<String> = entries.iter().map(|e| e.path().to_string()).collect();
                git::last_commits(g, commit, &ps)?
            } else {
                vec![None; entries.len()]
            };
            Ok((entries, commits))
        })
        .await
}

/// What a preupload needs: the commit, the text of `.gitattributes` and `.gitignore`, and the
/// remote oid of each path (LFS oid or blob id) if it exists.
pub async fn upload_context(
    state: &AppState,
    row: &RepoRow,
    rev: &str,
    paths: Vec<String>,
) -> ApiResult<(Oid, String, String, Vec<Option<String>>)> {
    let rev = rev.to_string();
    state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
            let read = |p: &str| -> ApiResult<String> {
                Ok(git::read_file(g, commit, p)?.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
            };
            let (attributes, gitignore) = (read(".gitattributes")?, read(".gitignore")?);
            let mut remote = Vec::with_capacity(paths.len());
            for p in &paths {
                remote.push(match git::entry_at(g, commit, p)? {
                    Some(Entry::File { lfs: Some((p, _)), .. }) => Some(p.oid),
                    Some(Entry::File { blob, .. }) => Some(blob.to_string()),
                    _ => None,
                });
            }
            Ok((commit, attributes, gitignore, remote))
        })
        .await
}

/// History from a revision, newest first: one page, and the total count.
#[tracing::instrument(skip_all, fields(repo = %row.id, rev = %rev, skip, limit))]
pub async fn history(state: &AppState, row: &RepoRow, rev: &str, skip: usize, limit: usize) -> ApiResult<(Vec<CommitInfo>, usize)> {
    let rev = rev.to_string();
    state
        .with_git(&row.id, move |g| {
            let start = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
            Ok(git::log(g, start, skip, limit)?)
        })
        .await
}

/// A repo's branches, tags and pull requests.
pub struct Refs {
    pub branches: Vec<RefInfo>,
    pub tags: Vec<RefInfo>,
    pub pull_requests: Vec<RefInfo>,
}

pub async fn refs(state: &AppState, row: &RepoRow) -> ApiResult<Refs> {
    state.with_git(&row.id, |g| Ok(Refs { branches: git::branches(g)?, tags: git::tags(g)?, pull_requests: git::pull_requests(g)? })).await
}

/// One changed file of a commit: its lines (class, text) or why none are shown.
pub struct FileDiff {
    pub path: String,
    pub status: String,
    pub lines: Vec<(&'static str, String)>,
    pub note: String,
}

/// Text diffs larger than this are not shown.
const MAX_DIFF: usize = 512 * 1024;

/// A commit and the diff of its files against its first parent.
#[tracing::instrument(skip_all, fields(repo = %row.id, sha = %sha))]
pub async fn commit_diff(state: &AppState, row: &RepoRow, sha: &str) -> ApiResult<(CommitInfo, Vec<FileDiff>)> {
    let sha = sha.to_string();
    state
        .with_git(&row.id, move |g| {
            let oid = git::resolve_revision(g, &sha).ok_or_else(|| ApiError::revision_not_found(&sha))?;
            let c = g.find_commit(oid)?;
            let parent_tree = c.parent(0).ok().map(|p| p.tree()).transpose()?;
            let diff = g.diff_tree_to_tree(parent_tree.as_ref(), Some(&c.tree()?), None)?;
            let mut files = Vec::new();
            for (i, delta) in diff.deltas().enumerate() {
                let path =
                    delta.new_file().path().or(delta.old_file().path()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                let status = format!("{:?}", delta.status()).to_lowercase();
                let (mut lines, mut note) = (Vec::new(), String::new());
                match git2::Patch::from_diff(&diff, i)? {
                    Some(patch) if !delta.flags().is_binary() && patch.size(false, false, false) < MAX_DIFF => {
                        for h in 0..patch.num_hunks() {
                            let (hunk, n) = patch.hunk(h)?;
                            lines.push(("hunk", String::from_utf8_lossy(hunk.header()).trim_end().to_string()));
                            for l in 0..n {
                                let line = patch.line_in_hunk(h, l)?;
                                let class = match line.origin() {
                                    '+' => "add",
                                    '-' => "del",
                                    _ => "ctx",
                                };
                                let text = String::from_utf8_lossy(line.content()).trim_end_matches('\n').to_string();
                                lines.push((class, format!("{}{text}", line.origin())));
                            }
                        }
                    }
                    _ => note = "Binary or large file: no diff shown.".to_string(),
                }
                if lines.is_empty() && note.is_empty() {
                    note = "No textual change.".to_string();
                }
                files.push(FileDiff { path, status, lines, note });
            }
            Ok((git::commit_info(&c), files))
        })
        .await
}

/// The README at a revision (the repo page), if any.
pub async fn readme(state: &AppState, row: &RepoRow, rev: &str) -> ApiResult<Option<String>> {
    let rev = rev.to_string();
    state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &rev).ok_or_else(|| ApiError::revision_not_found(&rev))?;
            Ok(git::read_file(g, commit, "README.md")?.map(|b| String::from_utf8_lossy(&b).into_owned()))
        })
        .await
}

/// Where a commit may go: a branch (checked), or a new pull request's base.
pub async fn check_commit_target(state: &AppState, row: &RepoRow, rev: &str) -> ApiResult<()> {
    let rev = rev.to_string();
    state.with_git(&row.id, move |g| crate::commits::target_for(g, &rev, false).map(|_| ())).await
}
