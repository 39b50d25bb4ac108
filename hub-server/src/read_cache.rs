//! What the read path remembers between requests, and how every replica learns it is stale.
//!
//! Mutable metadata (a repo's row, a token's owner, the objects a repo holds, its storage use)
//! is cached under the *epoch*: 8 random bytes in `read-cache-epoch` in the data directory,
//! which every replica shares with the git repositories. Whatever writes metadata writes a new
//! epoch when it is done (the write middleware after every mutating request and at the end of
//! its body, background jobs, CLI commands), and a cached entry counts only while the epoch it
//! was read under is still the file's, so a write on one replica is seen by the next request on
//! every replica. Reading the epoch is one `pread`. Each entry also expires after
//! `HUB_READ_CACHE_MAX_AGE_MS`, a backstop for a writer that died before writing the epoch.
//!
//! Branches and tags are validated by the files git keeps them in (see `RefStamp`), not by the
//! epoch, so a push made with any tool is seen at once. Content named by id (a commit's files,
//! a blob) never changes and is cached without either.

use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shared epoch file.
pub struct Epoch {
    file: File,
}

impl Epoch {
    pub fn open(data_dir: &Path) -> std::io::Result<Epoch> {
        let path = data_dir.join("read-cache-epoch");
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let epoch = Epoch { file };
        if epoch.file.metadata()?.len() < 8 {
            epoch.bump();
        }
        Ok(epoch)
    }

    /// The epoch now (0 if the file cannot be read: nothing cached then counts).
    pub fn current(&self) -> u64 {
        let mut buf = [0u8; 8];
        match self.file.read_exact_at(&mut buf, 0) {
            Ok(()) => u64::from_le_bytes(buf),
            Err(_) => 0,
        }
    }

    /// Starts a new epoch: every replica's cached metadata stops counting. A random value, not
    /// a counter, so two writers bumping at once cannot both write the same new value.
    pub fn bump(&self) {
        let value = loop {
            let v = rand::random::<u64>();
            if v != 0 {
                break v;
            }
        };
        if let Err(e) = self.file.write_all_at(&value.to_le_bytes(), 0) {
            tracing::warn!(error = %e, "could not write the read-cache epoch");
        }
    }
}

/// A bounded map of values tagged with the epoch they were read under.
pub struct EpochMap<K, V> {
    map: Mutex<HashMap<K, (V, u64, Instant)>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> EpochMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        EpochMap { map: Mutex::new(HashMap::new()), capacity }
    }

    pub fn get(&self, key: &K, epoch: u64, max_age: Duration) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (v, at_epoch, at) = map.get(key)?;
        (*at_epoch == epoch && epoch != 0 && at.elapsed() < max_age).then(|| v.clone())
    }

    /// Remembers `value`, read under `epoch` (taken *before* the read, so a write that lands
    /// during the read makes the entry stale at once).
    pub fn put(&self, key: K, value: V, epoch: u64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            // Entries are cheap to read again; dropping all keeps this simple and bounded.
            map.clear();
        }
        map.insert(key, (value, epoch, Instant::now()));
    }
}

/// The read path's caches, one per kind of answer.
pub struct ReadCaches {
    pub epoch: Epoch,
    pub max_age: Duration,
    /// Repo rows by name (found ones only: a miss asks the database every time).
    pub repos: EpochMap<crate::names::RepoName, std::sync::Arc<crate::db::RepoRow>>,
    /// Token hash → the caller it stands for (valid tokens only).
    pub callers: EpochMap<String, crate::auth::Caller>,
    /// (repo id, LFS oid) → what the repo holds under it.
    pub held: EpochMap<(String, String), Option<crate::db::HeldObject>>,
    /// Repo id → bytes its content occupies.
    pub used_storage: EpochMap<String, u64>,
    /// (repo id, commit) → the parameter counts of its safetensors files.
    pub safetensors: EpochMap<(String, git2::Oid), Option<hub_client::types::SafetensorsInfo>>,
    /// (repo id, commit, query) → the model_info answer.
    pub info: EpochMap<(String, git2::Oid, String), bytes::Bytes>,
    /// (repo id, revision) → the commit, valid while the ref's files are unchanged.
    refs: Mutex<HashMap<(String, String), (git2::Oid, RefStamp)>>,
    /// (repo id, commit, path) → the entry there (immutable).
    entries: Mutex<HashMap<(String, git2::Oid, String), crate::git::Entry>>,
    /// Small files' bytes by blob id (immutable), bounded by total size.
    blobs: Mutex<(HashMap<git2::Oid, bytes::Bytes>, usize)>,
}

const ENTRIES: usize = 10_000;
/// Blobs larger than this are read from git each time; all cached blobs together stay under
/// `BLOB_BYTES`.
pub const MAX_CACHED_BLOB: u64 = 256 * 1024;
const BLOB_BYTES: usize = 64 * 1024 * 1024;

impl ReadCaches {
    pub fn new(data_dir: &Path, max_age: Duration) -> std::io::Result<ReadCaches> {
        Ok(ReadCaches {
            epoch: Epoch::open(data_dir)?,
            max_age,
            repos: EpochMap::new(ENTRIES),
            callers: EpochMap::new(ENTRIES),
            held: EpochMap::new(ENTRIES),
            used_storage: EpochMap::new(ENTRIES),
            safetensors: EpochMap::new(ENTRIES),
            info: EpochMap::new(1_000),
            refs: Mutex::new(HashMap::new()),
            entries: Mutex::new(HashMap::new()),
            blobs: Mutex::new((HashMap::new(), 0)),
        })
    }

    /// The commit `rev` named when its ref files looked as they do now.
    pub fn commit(&self, repo_id: &str, rev: &str, stamp: &RefStamp) -> Option<git2::Oid> {
        let refs = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        refs.get(&(repo_id.to_string(), rev.to_string())).filter(|(_, s)| s == stamp).map(|(oid, _)| *oid)
    }

    pub fn put_commit(&self, repo_id: &str, rev: &str, commit: git2::Oid, stamp: RefStamp) {
        let mut refs = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        if refs.len() >= ENTRIES {
            refs.clear();
        }
        refs.insert((repo_id.to_string(), rev.to_string()), (commit, stamp));
    }

    /// Reads through `map`: the cached value if it is still valid, else `load`'s (remembered
    /// under the epoch taken before loading, so a write during the load leaves it stale).
    pub async fn remember<K, V, E, F>(&self, map: &EpochMap<K, V>, key: K, load: F) -> Result<V, E>
    where
        K: Eq + Hash,
        V: Clone,
        F: std::future::Future<Output = Result<V, E>>,
    {
        let epoch = self.epoch.current();
        if let Some(v) = map.get(&key, epoch, self.max_age) {
            return Ok(v);
        }
        let v = load.await?;
        map.put(key, v.clone(), epoch);
        Ok(v)
    }

    /// `remember` for lookups that may find nothing: only what was found is kept, so strangers
    /// asking for names nobody has cannot crowd the cache.
    pub async fn remember_found<K, V, E, F>(&self, map: &EpochMap<K, V>, key: K, load: F) -> Result<Option<V>, E>
    where
        K: Eq + Hash,
        V: Clone,
        F: std::future::Future<Output = Result<Option<V>, E>>,
    {
        let epoch = self.epoch.current();
        if let Some(v) = map.get(&key, epoch, self.max_age) {
            return Ok(Some(v));
        }
        let found = load.await?;
        if let Some(v) = &found {
            map.put(key, v.clone(), epoch);
        }
        Ok(found)
    }

    pub fn entry(&self, repo_id: &str, commit: git2::Oid, path: &str) -> Option<crate::git::Entry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&(repo_id.to_string(), commit, path.to_string())).cloned()
    }

    pub fn put_entry(&self, repo_id: &str, commit: git2::Oid, path: &str, entry: crate::git::Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= ENTRIES {
            entries.clear();
        }
        entries.insert((repo_id.to_string(), commit, path.to_string()), entry);
    }

    pub fn blob(&self, id: git2::Oid) -> Option<bytes::Bytes> {
        self.blobs.lock().unwrap_or_else(|e| e.into_inner()).0.get(&id).cloned()
    }

    pub fn put_blob(&self, id: git2::Oid, content: bytes::Bytes) {
        if content.len() as u64 > MAX_CACHED_BLOB {
            return;
        }
        let mut guard = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        let (map, total) = &mut *guard;
        if *total + content.len() > BLOB_BYTES {
            map.clear();
            *total = 0;
        }
        *total += content.len();
        if let Some(old) = map.insert(id, content) {
            *total -= old.len();
        }
    }
}

/// What a ref's files looked like when it was resolved: git keeps a branch or tag in a loose
/// file (replaced by rename on every update) or in `packed-refs`, and logs every update to its
/// reflog (`core.logAllRefUpdates`, which only grows). Equal stamps mean the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefStamp(Vec<Option<(u64, i64, i64, u64)>>);

impl RefStamp {
    /// The stamp of the files `git::resolve_revision` reads for `rev` in the repository at
    /// `repo`. A branch kept as a loose file (what every write through the hub leaves) is read
    /// from that file alone, as git does: it and its reflog are all that matter (2 `stat`s).
    pub fn of(repo: &Path, rev: &str) -> RefStamp {
        let names: Vec<String> =
            if rev.starts_with("refs/") { vec![rev.to_string()] } else { vec![format!("refs/heads/{rev}"), format!("refs/tags/{rev}")] };
        let first = stat(&repo.join(&names[0]));
        let mut stamp = vec![first, stat(&repo.join("logs").join(&names[0]))];
        if first.is_none() {
            stamp.push(stat(&repo.join("packed-refs")));
            for name in &names[1..] {
                stamp.push(stat(&repo.join(name)));
                stamp.push(stat(&repo.join("logs").join(name)));
            }
        }
        RefStamp(stamp)
    }
}

fn stat(path: &Path) -> Option<(u64, i64, i64, u64)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ctime() * 1_000_000_000 + m.ctime_nsec(), m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_only_under_its_epoch_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let epoch = Epoch::open(dir.path()).unwrap();
        let other = Epoch::open(dir.path()).unwrap(); // another replica, same data directory
        let map = EpochMap::new(10);
        let e = epoch.current();
        assert_ne!(e, 0);
        map.put("k", 1, e);
        assert_eq!(map.get(&"k", epoch.current(), Duration::from_secs(5)), Some(1));
        other.bump();
        assert_eq!(map.get(&"k", epoch.current(), Duration::from_secs(5)), None, "a write elsewhere is seen at once");
        map.put("k", 2, epoch.current());
        assert_eq!(map.get(&"k", epoch.current(), Duration::ZERO), None, "entries expire");
    }

    #[test]
    fn a_ref_stamp_changes_when_git_moves_the_ref() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        repo.config().unwrap().set_bool("core.logAllRefUpdates", true).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo.find_tree(repo.treebuilder(None).unwrap().write().unwrap()).unwrap();
        let c1 = repo.commit(Some("refs/heads/main"), &sig, &sig, "one", &tree, &[]).unwrap();
        let stamp = || RefStamp::of(dir.path(), "main");
        let before = stamp();
        assert_eq!(before, stamp());
        let parent = repo.find_commit(c1).unwrap();
        repo.commit(Some("refs/heads/main"), &sig, &sig, "two", &tree, &[&parent]).unwrap();
        assert_ne!(before, stamp());
        // Same again after the refs are packed (what `git gc` does), and once packed.
        let loose = stamp();
        std::process::Command::new("git").args(["pack-refs", "--all"]).current_dir(dir.path()).status().unwrap();
        let packed = stamp();
        assert_ne!(loose, packed);
        let head = repo.find_reference("refs/heads/main").unwrap().target().unwrap();
        std::fs::write(dir.path().join("packed-refs"), format!("{} refs/heads/main\n", c1)).unwrap();
        assert_ne!(packed, stamp(), "a rewritten packed-refs ({head} → {c1}) is seen");
    }
}
