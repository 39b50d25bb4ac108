//! Listing what the store holds: every key (for checks and tools), LFS objects and xorbs (for
//! garbage collection).

use super::{is_sha256, Storage};
use futures::StreamExt;
use object_store::path::Path as StorePath;

/// An object listed from storage.
#[derive(Debug, Clone)]
pub struct ListedObject {
    /// The oid (LFS) or hash/id (Xet) the key names.
    pub name: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

impl Storage {
    /// Every key under the store's root, published objects and staging files alike (for checks
    /// and tools): on local disk a walk of the directory (object_store's listing hides staging
    /// files), on S3 the bucket listing under the prefix (multipart uploads in flight are not
    /// objects there, so they never show).
    pub async fn list_keys(&self) -> Result<Vec<String>, object_store::Error> {
        if let Some(root) = &self.local_root {
            fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        walk(root, &path, out);
                    } else if let Ok(rel) = path.strip_prefix(root) {
                        out.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
            let root = root.clone();
            return tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                walk(&root, &root, &mut out);
                out
            })
            .await
            .map_err(|e| object_store::Error::Generic { store: "local", source: Box::new(e) });
        }
        let mut out = Vec::new();
        let mut listing = self.store.list(None);
        while let Some(meta) = listing.next().await {
            out.push(meta?.location.to_string());
        }
        Ok(out)
    }

    /// Every stored LFS object (for garbage collection).
    pub async fn list_lfs(&self) -> Result<Vec<ListedObject>, object_store::Error> {
        self.list_names(&StorePath::from("lfs"), is_sha256).await
    }

    /// Every stored xorb (for garbage collection).
    pub async fn list_xorbs(&self) -> Result<Vec<ListedObject>, object_store::Error> {
        self.list_names(&StorePath::from("xet/xorbs"), is_sha256).await
    }

    async fn list_names(&self, prefix: &StorePath, keep: impl Fn(&str) -> bool) -> Result<Vec<ListedObject>, object_store::Error> {
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(name) = meta.location.filename() else { continue };
            // Staging files of local multipart writes carry a `#` suffix: not objects yet.
            if !keep(name) {
                continue;
            }
            out.push(ListedObject { name: name.to_string(), size: meta.size, last_modified_ms: meta.last_modified.timestamp_millis() });
        }
        Ok(out)
    }
}
