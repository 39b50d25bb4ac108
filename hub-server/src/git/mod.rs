//! Bare git repositories (git2): every revision, branch and tag is a real git object, so the
//! ids the API returns are the ids git serves. All functions here block: call them from
//! `spawn_blocking`.

mod lfs_pointer;
pub mod push_checks;
mod refs;
pub mod smart_http;
mod tree_edit;

pub use lfs_pointer::LfsPointer;
pub use refs::{
    branch_head, branches, default_branch, is_revision_syntax, next_pr_number, pull_requests, remove_stale_ref_locks, resolve_revision,
    tags, RefInfo,
};
pub use tree_edit::{apply_ops, TreeError, TreeOp};

use git2::{ObjectType, Oid, Repository, Signature, Sort};
use std::path::PathBuf;

#[derive(Clone)]
pub struct GitStore {
    root: PathBuf,
}

/// A file or directory at some revision.
#[derive(Debug, Clone)]
pub enum Entry {
    File { path: String, blob: Oid, size: u64, lfs: Option<(LfsPointer, u64)> },
    Dir { path: String, tree: Oid },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: String,
    pub title: String,
    pub message: String,
    pub author: String,
    pub time_ms: i64,
    pub parents: Vec<String>,
}

impl GitStore {
    pub fn new(root: PathBuf) -> std::io::Result<GitStore> {
        std::fs::create_dir_all(&root)?;
        // Absolute: git http-backend runs with this as GIT_PROJECT_ROOT.
        Ok(GitStore { root: root.canonicalize()? })
    }

    pub fn path(&self, repo_id: &str) -> PathBuf {
        self.root.join(self.relative_path(repo_id))
    }

    /// A repository's directory relative to the root (the smart-HTTP PATH_INFO prefix).
    pub fn relative_path(&self, repo_id: &str) -> String {
        format!("{}/{repo_id}.git", &repo_id[..2.min(repo_id.len())])
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub fn open(&self, repo_id: &str) -> Result<Repository, git2::Error> {
        Repository::open_bare(self.path(repo_id))
    }

    /// Creates a bare repository whose `main` holds one commit with `files`.
    pub fn create(&self, repo_id: &str, files: &[(&str, &[u8])], sig: &Signature, message: &str) -> Result<Oid, git2::Error> {
        let path = self.path(repo_id);
        let repo = Repository::init_opts(&path, git2::RepositoryInitOptions::new().bare(true).initial_head("main").mkpath(true))?;
        // A reflog for every ref, API commits and pushes alike: how a moved ref can be traced.
        repo.config()?.set_bool("core.logAllRefUpdates", true)?;
        let mut ops = Vec::new();
        for (p, data) in files {
            ops.push(TreeOp::Put { path: p.to_string(), blob: repo.blob(data)?, mode: git2::FileMode::Blob });
        }
        let tree = apply_ops(&repo, None, ops).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        let tree = repo.find_tree(tree)?;
        repo.commit(Some("refs/heads/main"), sig, sig, message, &tree, &[])
    }

    pub fn delete(&self, repo_id: &str) -> std::io::Result<()> {
        let path = self.path(repo_id);
        if path.exists() {
            std::fs::remove_dir_all(path)?;
        }
        Ok(())
    }
}

/// Size and LFS pointer of a blob, reading the content only when it could be a pointer.
pub fn describe_blob(repo: &Repository, blob: Oid) -> Result<(u64, Option<(LfsPointer, u64)>), git2::Error> {
    let odb = repo.odb()?;
    let (size, _) = odb.read_header(blob)?;
    if size > lfs_pointer::MAX_POINTER_SIZE {
        return Ok((size as u64, None));
    }
    let object = odb.read(blob)?;
    match LfsPointer::parse(object.data()) {
        Some(p) => Ok((p.size, Some((p, size as u64)))),
        None => Ok((size as u64, None)),
    }
}

fn make_entry(repo: &Repository, path: String, entry: &git2::TreeEntry) -> Result<Option<Entry>, git2::Error> {
    Ok(match entry.kind() {
        Some(ObjectType::Tree) => Some(Entry::Dir { path, tree: entry.id() }),
        Some(ObjectType::Blob) => {
            let (size, lfs) = describe_blob(repo, entry.id())?;
            Some(Entry::File { path, blob: entry.id(), size, lfs })
        }
        _ => None, // submodules have no content here
    })
}

/// The entry at `path` in a commit ("" = the root directory).
pub fn entry_at(repo: &Repository, commit: Oid, path: &str) -> Result<Option<Entry>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    if path.is_empty() {
        return Ok(Some(Entry::Dir { path: String::new(), tree: tree.id() }));
    }
    match tree.get_path(std::path::Path::new(path)) {
        Ok(e) => make_entry(repo, path.to_string(), &e),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the whole content of a (small) file at a commit.
pub fn read_file(repo: &Repository, commit: Oid, path: &str) -> Result<Option<Vec<u8>>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    match tree.get_path(std::path::Path::new(path)) {
        Ok(e) if e.kind() == Some(ObjectType::Blob) => Ok(Some(repo.find_blob(e.id())?.content().to_vec())),
        Ok(_) => Ok(None),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Entries under the directory `tree` (whose path is `prefix`), sorted by path; depth-first when
/// recursive. Iterative: a tree pushed deeper than any path may be cannot exhaust the stack.
pub fn list_dir(repo: &Repository, tree: Oid, prefix: &str, recursive: bool, out: &mut Vec<Entry>) -> Result<(), git2::Error> {
    // Each level's remaining entries, in order; a subdirectory's entries come right after it.
    let mut levels: Vec<(std::vec::IntoIter<(String, git2::TreeEntry<'static>)>, usize)> = Vec::new();
    let entries = |t: Oid, prefix: &str| -> Result<Vec<(String, git2::TreeEntry<'static>)>, git2::Error> {
        let tree = repo.find_tree(t)?;
        Ok(tree
            .iter()
            .filter_map(|e| {
                let name = e.name()?;
                let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
                Some((path, e.to_owned()))
            })
            .collect())
    };
    levels.push((entries(tree, prefix)?.into_iter(), 0));
    while let Some((level, depth)) = levels.last_mut() {
        let depth = *depth;
        let Some((path, e)) = level.next() else {
            levels.pop();
            continue;
        };
        if let Some(entry) = make_entry(repo, path.clone(), &e)? {
            let sub = match &entry {
                Entry::Dir { tree, .. } if recursive && depth < crate::names::MAX_PATH_DEPTH => Some(*tree),
                _ => None,
            };
            out.push(entry);
            if let Some(sub) = sub {
                levels.push((entries(sub, &path)?.into_iter(), depth + 1));
            }
        }
    }
    Ok(())
}

/// All file paths of a commit (recursive), sorted.
pub fn all_files(repo: &Repository, commit: Oid) -> Result<Vec<Entry>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree_id();
    let mut out = Vec::new();
    list_dir(repo, tree, "", true, &mut out)?;
    out.retain(|e| matches!(e, Entry::File { .. }));
    Ok(out)
}

pub fn commit_info(commit: &git2::Commit) -> CommitInfo {
    let message = commit.message().unwrap_or("").to_string();
    let title = commit.summary().unwrap_or("").to_string();
    CommitInfo {
        id: commit.id().to_string(),
        title,
        message,
        author: commit.author().name().unwrap_or("").to_string(),
        time_ms: commit.time().seconds() * 1000,
        parents: commit.parent_ids().map(|p| p.to_string()).collect(),
    }
}

/// History from `start`, newest first: (page of commits, total count).
pub fn log(repo: &Repository, start: Oid, skip: usize, limit: usize) -> Result<(Vec<CommitInfo>, usize), git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
    walk.push(start)?;
    let mut page = Vec::new();
    let mut total = 0;
    for oid in walk {
        let oid = oid?;
        if total >= skip && page.len() < limit {
            page.push(commit_info(&repo.find_commit(oid)?));
        }
        total += 1;
    }
    Ok((page, total))
}

/// For each path, the newest commit (from `start`) that changed it, as far as a bounded walk
/// finds: at most 5000 commits and a fixed number of tree lookups, however many paths are asked
/// (paths it cannot place in that budget get None). A directory whose tree did not change in a
/// commit is skipped with one comparison for all the paths under it.
pub fn last_commits(repo: &Repository, start: Oid, paths: &[String]) -> Result<Vec<Option<CommitInfo>>, git2::Error> {
    const MAX_WALK: usize = 5000;
    const MAX_LOOKUPS: usize = 200_000;
    let mut found: Vec<Option<CommitInfo>> = vec![None; paths.len()];
    let mut remaining = paths.len();
    let entry_id = |tree: &git2::Tree, path: &str| -> Option<Oid> {
        if path.is_empty() {
            Some(tree.id())
        } else {
            tree.get_path(std::path::Path::new(path)).ok().map(|e| e.id())
        }
    };
    // Paths grouped by their directory.
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        groups.entry(p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")).or_default().push(i);
    }
    let mut lookups = 0usize;
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
    walk.push(start)?;
    for oid in walk.take(MAX_WALK) {
        if remaining == 0 || lookups > MAX_LOOKUPS {
            break;
        }
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let parent_tree = match commit.parent(0) {
            Ok(p) => Some(p.tree()?),
            Err(_) => None,
        };
        for (dir, members) in &groups {
            if members.iter().all(|&i| found[i].is_some()) {
                continue;
            }
            lookups += 2;
            let dir_here = entry_id(&tree, dir);
            if dir_here.is_some() && dir_here == parent_tree.as_ref().and_then(|t| entry_id(t, dir)) {
                continue;
            }
            for &i in members {
                if found[i].is_some() {
                    continue;
                }
                lookups += 2;
                let here = entry_id(&tree, &paths[i]);
                let before = parent_tree.as_ref().and_then(|t| entry_id(t, &paths[i]));
                if here.is_some() && here != before {
                    found[i] = Some(commit_info(&commit));
                    remaining -= 1;
                }
            }
        }
    }
    Ok(found)
}

/// Every LFS pointer reachable from any ref, in any commit of its history (each tree is read
/// once however many commits share it).
pub fn reachable_pointers(repo: &Repository) -> Result<Vec<LfsPointer>, git2::Error> {
    let mut walk = repo.revwalk()?;
    for r in repo.references()?.flatten() {
        if let Ok(c) = r.peel_to_commit() {
            walk.push(c.id())?;
        }
    }
    let odb = repo.odb()?;
    let mut seen = std::collections::HashSet::new();
    let mut pointers = std::collections::BTreeMap::new();
    let mut trees = Vec::new();
    for oid in walk {
        trees.push(repo.find_commit(oid?)?.tree_id());
        while let Some(tree) = trees.pop() {
            if !seen.insert(tree) {
                continue;
            }
            for e in repo.find_tree(tree)?.iter() {
                match e.kind() {
                    Some(ObjectType::Tree) => trees.push(e.id()),
                    Some(ObjectType::Blob) if seen.insert(e.id()) => {
                        let (size, _) = odb.read_header(e.id())?;
                        if size <= lfs_pointer::MAX_POINTER_SIZE {
                            if let Some(p) = LfsPointer::parse(odb.read(e.id())?.data()) {
                                pointers.insert(p.oid.clone(), p);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(pointers.into_values().collect())
}
