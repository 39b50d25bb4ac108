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

/// Whether a repo path names a file inside a snapshot: relative, no `.`/`..`/empty segments, no
/// backslash, NUL or control characters. A hostile hub must not make the cache write elsewhere.
pub fn is_safe_repo_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path.split('/').all(|seg| !matches!(seg, "" | "." | ".."))
}

/// Whether a hub-supplied blob name (an ETag) is a SHA-256 or git SHA-1 in hex.
pub fn is_blob_id(etag: &str) -> bool {
    (etag.len() == 64 || etag.len() == 40) && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn unsafe_name(what: &str, value: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("refusing to use {what} {value:?} as a cache path"))
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
        // Branch names may contain `/` (refs/pr/1): the same rules as paths keep them inside.
        if !is_safe_repo_path(revision) {
            return Err(unsafe_name("revision", revision));
        }
        if !is_commit_hash(commit) {
            return Err(unsafe_name("commit", commit));
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
        if !is_commit_hash(commit) {
            return Err(unsafe_name("commit", commit));
        }
        if !is_safe_repo_path(path) {
            return Err(unsafe_name("path", path));
        }
        if !is_blob_id(etag) {
            return Err(unsafe_name("blob name", etag));
        }
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
        if !is_commit_hash(commit) || !is_safe_repo_path(path) {
            return Err(unsafe_name("path", path));
        }
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
    fn names_from_a_hub_cannot_lead_outside_the_cache() {
        for ok in ["config.json", "a/b/c.bin", ".gitattributes", "x..y"] {
            assert!(is_safe_repo_path(ok), "{ok}");
        }
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "a\nb", ".."] {
            assert!(!is_safe_repo_path(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoCache { dir: dir.path().join("models--a--b") };
        let commit = "a".repeat(40);
        assert!(repo.link(&commit, "../../../escape", &"b".repeat(64)).is_err());
        assert!(repo.link("../../x", "f", &"b".repeat(64)).is_err());
        assert!(repo.link(&commit, "f", "../../x").is_err());
        assert!(repo.write_ref("../../../escape", &commit).is_err());
        assert!(repo.write_ref("main", "../x").is_err());
        assert!(repo.mark_missing(&commit, "../../escape").is_err());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was written anywhere");
    }

    #[test]
    fn layout_matches_huggingface_hub() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let repo = RepoCache { dir: cache.repo_dir(RepoType::Model, "alice/tiny") };
        assert!(repo.dir.ends_with("models--alice--tiny"));
        assert_eq!(cache.repo_dir(RepoType::Dataset, "a/b").file_name().unwrap(), "datasets--a--b");
        let commit = "a".repeat(40);
        std::fs::create_dir_all(repo.dir.join("blobs")).unwrap();
        let etag = "e1".repeat(32);
        std::fs::write(repo.blob_path(&etag), b"x").unwrap();
        let linked = repo.link(&commit, "sub/dir/f.txt", &etag).unwrap();
        assert_eq!(std::fs::read_link(&linked).unwrap(), Path::new("../../../../blobs").join(&etag));
        assert_eq!(std::fs::read(&linked).unwrap(), b"x");
        repo.write_ref("main", &commit).unwrap();
        assert_eq!(std::fs::read_to_string(repo.dir.join("refs/main")).unwrap(), commit);
        assert_eq!(repo.read_ref("main").unwrap(), commit);
        repo.write_ref("refs/pr/1", &commit).unwrap();
        assert_eq!(repo.read_ref("refs/pr/1").unwrap(), commit);
    }
}
