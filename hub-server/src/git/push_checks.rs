//! What a push may do, decided before any ref moves (run from the pre-receive hook, while the
//! pushed objects are still in git's quarantine): the default branch stays, no large file
//! bypasses LFS, and every LFS pointer names an object the hub has.

use super::LfsPointer;
use crate::attributes::LFS_SIZE_THRESHOLD;
use git2::{Delta, DiffOptions, Oid, Repository};

#[derive(Debug, Clone)]
pub struct RefUpdate {
    pub old: Oid,
    pub new: Oid,
    pub name: String,
}

/// Parses the pre-receive hook's stdin: `<old> <new> <ref>` per line.
pub fn parse_updates(input: &str) -> Result<Vec<RefUpdate>, String> {
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("malformed ref update {line:?}"));
            };
            let old = Oid::from_str(old).map_err(|e| e.to_string())?;
            let new = Oid::from_str(new).map_err(|e| e.to_string())?;
            Ok(RefUpdate { old, new, name: name.to_string() })
        })
        .collect()
}

/// Refuses a tree deeper than `MAX_PATH_DEPTH` or with an entry no repo path may have (`.`, `..`,
/// `.git`, control characters). Iterative, and each tree is read once.
fn check_tree_shape(repo: &Repository, root: Oid, checked: &mut std::collections::HashSet<Oid>) -> Result<(), String> {
    let max = crate::names::MAX_PATH_DEPTH;
    let mut stack = vec![(root, 1usize, String::new())];
    while let Some((tree, depth, path)) = stack.pop() {
        if !checked.insert(tree) {
            continue;
        }
        for e in repo.find_tree(tree).map_err(|e| e.to_string())?.iter() {
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            let here = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
            if matches!(name.as_str(), "" | "." | ".." | ".git") || name.chars().any(char::is_control) {
                return Err(format!("{here:?} cannot be pushed: no path may contain {name:?}"));
            }
            if e.kind() == Some(git2::ObjectType::Tree) {
                if depth >= max {
                    return Err(format!("{here} is nested more than {max} directories deep; flatten the repository's layout"));
                }
                stack.push((e.id(), depth + 1, here));
            }
        }
    }
    Ok(())
}

/// An LFS pointer a push introduces, with the path it appeared at.
#[derive(Debug, Clone)]
pub struct IntroducedPointer {
    pub path: String,
    pub pointer: LfsPointer,
}

/// Checks the ref updates of a push; returns the LFS pointers it introduces, or the message
/// the pusher should see.
pub fn inspect_push(repo: &Repository, updates: &[RefUpdate], default_ref: &str) -> Result<Vec<IntroducedPointer>, String> {
    let mut walk = repo.revwalk().map_err(|e| e.to_string())?;
    let mut any_new = false;
    for u in updates {
        if u.new.is_zero() {
            if u.name == default_ref {
                let branch = u.name.trim_start_matches("refs/heads/");
                return Err(format!("deleting the default branch '{branch}' is not allowed"));
            }
            continue;
        }
        if !(u.name.starts_with("refs/heads/") || u.name.starts_with("refs/tags/")) {
            return Err(format!("{} cannot be pushed: only branches (refs/heads/*) and tags (refs/tags/*) can", u.name));
        }
        let commit = repo.find_object(u.new, None).and_then(|o| o.peel_to_commit()).map_err(|e| format!("{}: {e}", u.name))?;
        walk.push(commit.id()).map_err(|e| e.to_string())?;
        any_new = true;
    }
    if !any_new {
        return Ok(Vec::new());
    }
    // The shape of every pushed tree first: the diff below (and every later read) walks trees,
    // so none may be deeper than a path may be, or name what no path may name.
    let mut shapes = repo.revwalk().map_err(|e| e.to_string())?;
    for u in updates.iter().filter(|u| !u.new.is_zero()) {
        if let Ok(c) = repo.find_object(u.new, None).and_then(|o| o.peel_to_commit()) {
            shapes.push(c.id()).map_err(|e| e.to_string())?;
        }
    }
    for r in repo.references().map_err(|e| e.to_string())?.flatten() {
        if let Ok(c) = r.peel_to_commit() {
            let _ = shapes.hide(c.id());
        }
    }
    let mut checked = std::collections::HashSet::new();
    for oid in shapes {
        let commit = repo.find_commit(oid.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        check_tree_shape(repo, commit.tree_id(), &mut checked)?;
    }
    // Only what the push adds: hide everything the repository already references.
    for r in repo.references().map_err(|e| e.to_string())?.flatten() {
        if let Ok(c) = r.peel_to_commit() {
            let _ = walk.hide(c.id());
        }
    }
    let odb = repo.odb().map_err(|e| e.to_string())?;
    let mut pointers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for oid in walk {
        let commit = repo.find_commit(oid.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let tree = commit.tree().map_err(|e| e.to_string())?;
        let parents: Vec<_> = commit.parents().filter_map(|p| p.tree().ok()).collect();
        let bases: Vec<Option<&git2::Tree>> = if parents.is_empty() { vec![None] } else { parents.iter().map(Some).collect() };
        for base in bases {
            let mut opts = DiffOptions::new();
            opts.ignore_submodules(true);
            let diff = repo.diff_tree_to_tree(base, Some(&tree), Some(&mut opts)).map_err(|e| e.to_string())?;
            for delta in diff.deltas() {
                if !matches!(delta.status(), Delta::Added | Delta::Modified | Delta::Copied | Delta::Renamed | Delta::Typechange) {
                    continue;
                }
                let file = delta.new_file();
                if !seen.insert(file.id()) || file.mode() == git2::FileMode::Commit {
                    continue;
                }
                let path = file.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                let (size, _) = odb.read_header(file.id()).map_err(|e| e.to_string())?;
                if size as u64 > LFS_SIZE_THRESHOLD {
                    return Err(format!(
                        "{path} is {size} bytes: files over 10 MiB must be stored with git-lfs. \
                         Run `git lfs track \"{path}\"`, then `git lfs migrate import --include=\"{path}\"` and push again"
                    ));
                }
                if size <= super::lfs_pointer::MAX_POINTER_SIZE {
                    let object = odb.read(file.id()).map_err(|e| e.to_string())?;
                    if let Some(pointer) = LfsPointer::parse(object.data()) {
                        pointers.push(IntroducedPointer { path, pointer });
                    }
                }
            }
        }
    }
    Ok(pointers)
}
