//! The cache, byte-compatible with huggingface_hub's (`hub-protocol.md` §9):
//!
//! ```text
//! {root}/models--ns--name/blobs/<etag>                 content, named by ETag (git sha1 or sha256)
//! {root}/models--ns--name/refs/<revision>              the commit a revision resolved to (no newline)
//! {root}/models--ns--name/snapshots/<commit>/<path>    relative symlink to ../../blobs/<etag>
//! {root}/models--ns--name/.no_exist/<commit>/<path>    the file is known not to exist there
//! ```

use crate::types::RepoType;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `$HF_HOME`, or `$XDG_CACHE_HOME/huggingface`, or `~/.cache/huggingface`.
pub fn hf_home() -> PathBuf {
    env_path("HF_HOME").unwrap_or_else(|| {
        env_path("XDG_CACHE_HOME")
            .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"))
            .join("huggingface")
    })
}

pub fn is_commit_hash(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// `$HF_HUB_CACHE` › `$HUGGINGFACE_HUB_CACHE` › `$HF_HOME/hub` › `~/.cache/huggingface/hub`.
    pub fn from_env() -> Cache {
        Cache::new(env_path("HF_HUB_CACHE").or_else(|| env_path("HUGGINGFACE_HUB_CACHE")).unwrap_or_else(|| hf_home().join("hub")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn repo_dir(&self, repo_type: RepoType, repo_id: &str) -> PathBuf {
        self.root.join(format!("{}--{}", repo_type.cache_prefix(), repo_id.replace('/', "--")))
    }
}

/// One repo's corner of the cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    pub dir: PathBuf,
}

impl RepoCache {
    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    pub fn snapshot_path(&self, commit: &str, path: &str) -> PathBuf {
        self.snapshot_dir(commit).join(path)
    }

    /// The commit a revision resolved to last time (a commit hash resolves to itself).
    pub fn read_ref(&self, revision: &str) -> Option<String> {
        if is_commit_hash(revision) {
            return Some(revision.to_string());
        }
        std::fs::read_to_string(self.dir.join("refs").join(revision)).ok().map(|s| s.trim().to_string()).filter(|s| is_commit_hash(s))
    }

    /// Records `revision → commit` (atomically; commit hashes need no ref).
    pub fn write_ref(&self, revision: &str, commit: &str) -> std::io::Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        if std::fs::read_to_string(&path).is_ok_and(|c| c == commit) {
            return Ok(());
        }
        write_atomic(&path, commit.as_bytes())
    }

    /// Points `snapshots/<commit>/<path>` at `blobs/<etag>` with a relative symlink, replacing
    /// whatever was there, so a snapshot path never shows a partial file.
    pub fn link(&self, commit: &str, path: &str, etag: &str) -> std::io::Result<PathBuf> {
        let target_file = self.snapshot_path(commit, path);
        let parent = target_file.parent().expect("snapshot paths have a parent");
        std::fs::create_dir_all(parent)?;
        let depth = path.matches('/').count();
        let relative: PathBuf = std::iter::repeat_n(Path::new(".."), depth + 2).collect::<PathBuf>().join("blobs").join(etag);
        let tmp = parent.join(format!(".{}.{}.link", target_file.file_name().unwrap_or_default().to_string_lossy(), rand::random::<u32>()));
        #[cfg(unix)]
        std::os::unix::fs::symlink(&relative, &tmp)?;
        #[cfg(not(unix))]
        std::fs::copy(self.blob_path(etag), &tmp).map(|_| ())?;
        std::fs::rename(&tmp, &target_file)?;
        Ok(target_file)
    }

    pub fn mark_missing(&self, commit: &str, path: &str) -> std::io::Result<()> {
        let p = self.dir.join(".no_exist").join(commit).join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, b"")
    }

    pub fn is_marked_missing(&self, commit: &str, path: &str) -> bool {
        self.dir.join(".no_exist").join(commit).join(path).exists()
    }
}

/// Writes a file through a temporary name and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let repo = RepoCache { dir: cache.repo_dir(RepoType::Model, "alice/tiny") };
        assert!(repo.dir.ends_with("models--alice--tiny"));
        assert_eq!(cache.repo_dir(RepoType::Dataset, "a/b").file_name().unwrap(), "datasets--a--b");
        let commit = "a".repeat(40);
        std::fs::create_dir_all(repo.dir.join("blobs")).unwrap();
        std::fs::write(repo.blob_path("e1"), b"x").unwrap();
        let linked = repo.link(&commit, "sub/dir/f.txt", "e1").unwrap();
        assert_eq!(std::fs::read_link(&linked).unwrap(), Path::new("../../../../blobs/e1"));
        assert_eq!(std::fs::read(&linked).unwrap(), b"x");
        repo.write_ref("main", &commit).unwrap();
        assert_eq!(std::fs::read_to_string(repo.dir.join("refs/main")).unwrap(), commit);
        assert_eq!(repo.read_ref("main").unwrap(), commit);
        repo.write_ref("refs/pr/1", &commit).unwrap();
        assert_eq!(repo.read_ref("refs/pr/1").unwrap(), commit);
    }
}
