//! Local disk: client multipart parts written at their offsets into one staging file and
//! hashed on the way in, and the sweep of staging files a crash left behind.

use super::hashing::hash_off_thread;
use super::{lfs_key, PutError, Storage};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The hash of parts 1..next of an upload; poisoned once a part arrives out of order.
pub(super) struct RunningHash {
    next: u32,
    hasher: Option<Sha256>,
    poisoned: bool,
    /// When a part last arrived: uploads abandoned for longer than their URLs live are dropped.
    touched: std::time::Instant,
}

/// Running hashes older than the transfer URLs' lifetime belong to abandoned uploads.
pub(super) const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(crate::lfs::URL_TTL_SECS as u64);

/// The staging file of a local multipart upload and the marker of one of its parts.
pub(super) fn local_part_paths(root: &std::path::Path, key: &str, part: u32) -> (PathBuf, PathBuf) {
    let dir = root.join("tmp").join("multipart");
    (dir.join(format!("{key}.bin")), dir.join(format!("{key}.{part:05}.done")))
}

impl Storage {
    /// Removes staging files that a crash left behind on local disk (uploads in flight are
    /// invisible until complete, so nothing else reads them). S3 buckets should carry a
    /// lifecycle rule that aborts incomplete multipart uploads instead.
    pub fn sweep_staging(&self) {
        fn walk(dir: &std::path::Path) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path);
                } else if e.file_name().to_string_lossy().contains('#') {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        if let Some(root) = &self.local_root {
            let tmp = root.join("tmp");
            if tmp.exists() {
                if let Err(e) = std::fs::remove_dir_all(&tmp) {
                    tracing::warn!(error = %e, "could not clear staging directory {}", tmp.display());
                }
            }
            walk(&root.join("lfs"));
            walk(&root.join("xet"));
        }
    }

    /// Local disk: every part lands at its offset in one staging file, hashed on the way in
    /// when parts come in order (huggingface_hub sends them one after another), so completing
    /// is a rename.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn put_local_part<S, E>(
        &self,
        root: &std::path::Path,
        key: &str,
        part: u32,
        offset: u64,
        size: u64,
        total: u64,
        body: S,
    ) -> Result<String, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        let (staging, marker) = local_part_paths(root, key, part);
        tokio::fs::create_dir_all(staging.parent().expect("staging dir")).await.map_err(|e| PutError::Body(e.to_string()))?;
        let io = |e: std::io::Error| PutError::Body(e.to_string());
        let mut file = tokio::fs::OpenOptions::new().create(true).write(true).truncate(false).open(&staging).await.map_err(io)?;
        if file.metadata().await.map_err(io)?.len() < total {
            file.set_len(total).await.map_err(io)?;
        }
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
        let mut hasher = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let abandoned_after = self.abandoned_after;
            running.retain(|_, r| r.touched.elapsed() < abandoned_after);
            let entry = running.entry(key.to_string()).or_insert_with(|| RunningHash {
                next: 1,
                hasher: Some(Sha256::new()),
                poisoned: false,
                touched: std::time::Instant::now(),
            });
            entry.touched = std::time::Instant::now();
            if !entry.poisoned && entry.next == part && entry.hasher.is_some() {
                entry.hasher.take()
            } else {
                entry.poisoned = true;
                None
            }
        };
        let mut written = 0u64;
        let mut body = body;
        let result: Result<(), PutError> = async {
            let mut buf = Vec::with_capacity(1024 * 1024);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
                written += chunk.len() as u64;
                if written > size {
                    return Err(PutError::SizeMismatch { expected: size, actual: written });
                }
                buf.extend_from_slice(&chunk);
                if buf.len() >= 1024 * 1024 {
                    hash_off_thread(&mut hasher, &mut buf).await?;
                    file.write_all(&buf).await.map_err(io)?;
                    buf.clear();
                }
            }
            hash_off_thread(&mut hasher, &mut buf).await?;
            file.write_all(&buf).await.map_err(io)?;
            file.flush().await.map_err(io)?;
            if written != size {
                return Err(PutError::SizeMismatch { expected: size, actual: written });
            }
            tokio::fs::write(&marker, b"").await.map_err(io)
        }
        .await;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = running.get_mut(key) {
            match (result.is_ok(), hasher) {
                (true, Some(h)) => {
                    entry.hasher = Some(h);
                    entry.next += 1;
                }
                (_, Some(_)) | (false, None) => entry.poisoned = true,
                (true, None) => {}
            }
        }
        result.map(|()| format!("{part}-{size}"))
    }

    /// Completes a local upload of `count` parts: checks the staging file's size and SHA-256,
    /// moves it to its oid's key when they match, and removes what the upload left.
    pub(super) async fn complete_local(
        &self,
        root: &std::path::Path,
        key: &str,
        count: u32,
        oid: &str,
        expected_size: u64,
    ) -> Result<(), PutError> {
        let (staging, _) = local_part_paths(root, key, 1);
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        let known = running.filter(|r| !r.poisoned && r.next == count + 1).and_then(|r| r.hasher);
        let path = staging.clone();
        let checked = tokio::task::spawn_blocking(move || staged_size_and_sha(&path, known))
            .await
            .map_err(|e| PutError::Body(e.to_string()))?
            .map_err(|e| PutError::Body(e.to_string()))?;
        let verdict = if checked.0 != expected_size {
            Err(PutError::SizeMismatch { expected: expected_size, actual: checked.0 })
        } else if checked.1 != oid {
            Err(PutError::HashMismatch { expected: oid.to_string(), actual: checked.1 })
        } else {
            let target = root.join(lfs_key(oid).as_ref());
            let moved = async {
                tokio::fs::create_dir_all(target.parent().expect("object dir")).await?;
                tokio::fs::rename(&staging, &target).await
            };
            moved.await.map_err(|e| PutError::Body(e.to_string()))
        };
        let _ = tokio::fs::remove_file(&staging).await;
        for n in 1..=count {
            let _ = tokio::fs::remove_file(local_part_paths(root, key, n).1).await;
        }
        verdict
    }
}

/// Size and SHA-256 of a local upload's staging file: `known` is the running hash when its parts
/// came in order; otherwise the file is read back.
fn staged_size_and_sha(path: &std::path::Path, known: Option<Sha256>) -> std::io::Result<(u64, String)> {
    let len = std::fs::metadata(path)?.len();
    let sha = match known {
        Some(h) => h,
        None => {
            // Parts came out of order (or to another process): read the file back.
            use std::io::Read;
            let mut f = std::fs::File::open(path)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 4 * 1024 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break h;
                }
                h.update(&buf[..n]);
            }
        }
    };
    Ok((len, hex::encode(sha.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &'static [u8]) -> futures::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>> {
        futures::stream::iter(vec![Ok(Bytes::from_static(data))])
    }

    #[tokio::test]
    async fn abandoned_multipart_uploads_do_not_keep_their_running_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = Storage::local(dir.path().to_path_buf()).unwrap();
        storage.abandoned_after = std::time::Duration::from_secs(2);
        // Uploads that send their first part and never come back.
        for _ in 0..20 {
            let id = storage.begin_multipart().await.unwrap();
            storage.put_part(&id, 1, 0, 4, 8, body(b"abcd")).await.unwrap();
        }
        assert_eq!(storage.running.lock().unwrap().len(), 20);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let id = storage.begin_multipart().await.unwrap();
        storage.put_part(&id, 1, 0, 4, 8, body(b"abcd")).await.unwrap();
        assert_eq!(storage.running.lock().unwrap().len(), 1, "only the live upload is remembered");
    }
}
