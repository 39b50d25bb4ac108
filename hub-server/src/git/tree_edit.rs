//! Applies a commit's file operations to a git tree in memory, loading only the directories the
//! operations touch, then writes the changed directories bottom-up.

use git2::{FileMode, ObjectType, Oid, Repository};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub enum TreeOp {
    Put { path: String, blob: Oid, mode: FileMode },
    DeleteFile { path: String },
    DeleteFolder { path: String },
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("A file with this name doesn't exist: {0}")]
    MissingFile(String),
    #[error("A folder with this name doesn't exist: {0}")]
    MissingFolder(String),
    #[error("path {0:?} conflicts with an existing file of the same name")]
    Conflict(String),
    #[error(transparent)]
    Git(#[from] git2::Error),
}

enum Node {
    Blob { oid: Oid, mode: i32 },
    Dir(Dir),
}

/// A directory: its original tree (if any) and, once touched, its loaded children.
struct Dir {
    original: Option<Oid>,
    children: Option<BTreeMap<String, Node>>,
}

impl Dir {
    fn children(&mut self, repo: &Repository) -> Result<&mut BTreeMap<String, Node>, git2::Error> {
        if self.children.is_none() {
            let mut map = BTreeMap::new();
            if let Some(oid) = self.original {
                for e in repo.find_tree(oid)?.iter() {
                    let Some(name) = e.name() else { continue };
                    let node = match e.kind() {
                        Some(ObjectType::Tree) => Node::Dir(Dir { original: Some(e.id()), children: None }),
                        _ => Node::Blob { oid: e.id(), mode: e.filemode() },
                    };
                    map.insert(name.to_string(), node);
                }
            }
            self.children = Some(map);
        }
        Ok(self.children.as_mut().expect("children loaded above"))
    }

    /// The directory at `segments`, created when `create` (fails on a file in the way).
    fn descend(&mut self, repo: &Repository, segments: &[&str], full: &str, create: bool) -> Result<Option<&mut Dir>, TreeError> {
        let Some((first, rest)) = segments.split_first() else { return Ok(Some(self)) };
        let children = self.children(repo)?;
        if !children.contains_key(*first) {
            if !create {
                return Ok(None);
            }
            children.insert(first.to_string(), Node::Dir(Dir { original: None, children: Some(BTreeMap::new()) }));
        }
        match children.get_mut(*first) {
            Some(Node::Dir(d)) => d.descend(repo, rest, full, create),
            Some(Node::Blob { .. }) if create => Err(TreeError::Conflict(full.to_string())),
            _ => Ok(None),
        }
    }

    /// Writes this directory; None when it ends up empty (git has no empty trees).
    fn write(self, repo: &Repository) -> Result<Option<Oid>, git2::Error> {
        let Some(children) = self.children else { return Ok(self.original) };
        let mut builder = repo.treebuilder(None)?;
        for (name, node) in children {
            match node {
                Node::Blob { oid, mode } => {
                    builder.insert(&name, oid, mode)?;
                }
                Node::Dir(d) => {
                    if let Some(oid) = d.write(repo)? {
                        builder.insert(&name, oid, FileMode::Tree.into())?;
                    }
                }
            }
        }
        if builder.is_empty() {
            return Ok(None);
        }
        builder.write().map(Some)
    }
}

/// Applies `ops` in order (later ones win) to `base` and returns the new tree id.
pub fn apply_ops(repo: &Repository, base: Option<Oid>, ops: Vec<TreeOp>) -> Result<Oid, TreeError> {
    let mut root = Dir { original: base, children: None };
    for op in ops {
        match op {
            TreeOp::Put { path, blob, mode } => {
                let segments: Vec<&str> = path.split('/').collect();
                let (name, parents) = segments.split_last().expect("validated paths are non-empty");
                let dir = root.descend(repo, parents, &path, true)?.expect("created on demand");
                let children = dir.children(repo)?;
                if let Some(Node::Dir(_)) = children.get(*name) {
                    return Err(TreeError::Conflict(path.clone()));
                }
                children.insert(name.to_string(), Node::Blob { oid: blob, mode: mode.into() });
            }
            TreeOp::DeleteFile { path } => {
                let segments: Vec<&str> = path.split('/').collect();
                let (name, parents) = segments.split_last().expect("validated paths are non-empty");
                let missing = || TreeError::MissingFile(path.clone());
                let dir = root.descend(repo, parents, &path, false)?.ok_or_else(missing)?;
                let children = dir.children(repo)?;
                match children.get(*name) {
                    Some(Node::Blob { .. }) => {
                        children.remove(*name);
                    }
                    _ => return Err(missing()),
                }
            }
            TreeOp::DeleteFolder { path } => {
                let trimmed = path.trim_end_matches('/');
                let segments: Vec<&str> = trimmed.split('/').collect();
                let (name, parents) = segments.split_last().expect("validated paths are non-empty");
                let missing = || TreeError::MissingFolder(path.clone());
                let dir = root.descend(repo, parents, &path, false)?.ok_or_else(missing)?;
                let children = dir.children(repo)?;
                match children.get(*name) {
                    Some(Node::Dir(_)) => {
                        children.remove(*name);
                    }
                    _ => return Err(missing()),
                }
            }
        }
    }
    match root.write(repo)? {
        Some(oid) => Ok(oid),
        None => Ok(repo.treebuilder(None)?.write()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(repo: &Repository, tree: Oid) -> Vec<String> {
        let mut out = Vec::new();
        repo.find_tree(tree)
            .unwrap()
            .walk(git2::TreeWalkMode::PreOrder, |root, e| {
                if e.kind() == Some(ObjectType::Blob) {
                    out.push(format!("{root}{}", e.name().unwrap()));
                }
                git2::TreeWalkResult::Ok
            })
            .unwrap();
        out
    }

    #[test]
    fn ops_apply_in_order_and_prune_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let a = repo.blob(b"a").unwrap();
        let put = |p: &str| TreeOp::Put { path: p.into(), blob: a, mode: FileMode::Blob };
        let t1 = apply_ops(&repo, None, vec![put("x/y/z.txt"), put("top.txt"), put("x/w.txt")]).unwrap();
        assert_eq!(paths(&repo, t1), ["top.txt", "x/w.txt", "x/y/z.txt"]);
        let t2 =
            apply_ops(&repo, Some(t1), vec![TreeOp::DeleteFolder { path: "x/y".into() }, TreeOp::DeleteFile { path: "x/w.txt".into() }])
                .unwrap();
        assert_eq!(paths(&repo, t2), ["top.txt"]);
        assert!(matches!(apply_ops(&repo, Some(t2), vec![TreeOp::DeleteFile { path: "nope".into() }]), Err(TreeError::MissingFile(_))));
        assert!(matches!(apply_ops(&repo, Some(t2), vec![put("top.txt/inner")]), Err(TreeError::Conflict(_))));
        // Untouched subtrees keep their ids.
        let t3 = apply_ops(&repo, Some(t1), vec![put("new.txt")]).unwrap();
        let x1 = repo.find_tree(t1).unwrap().get_name("x").unwrap().id();
        let x3 = repo.find_tree(t3).unwrap().get_name("x").unwrap().id();
        assert_eq!(x1, x3);
    }
}
