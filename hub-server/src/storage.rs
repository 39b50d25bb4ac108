//! LFS objects in object storage, content-addressed by SHA-256. An object becomes visible only
//! after its bytes hashed to its name at the declared size: bytes go to a temporary key first,
//! then move to `lfs/<aa>/<bb>/<oid>`.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// Chunk size of the multipart writes into the store; bounds memory per upload.
const WRITE_CHUNK: usize = 8 * 1024 * 1024;
/// Chunks in flight per upload.
const WRITE_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("object size mismatch: expected {expected} bytes, received {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("object hash mismatch: expected sha256 {expected}, received bytes hash to {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Root directory when the store is local disk (for sweeping abandoned staging files).
    local_root: Option<PathBuf>,
}

/// True for a well-formed lowercase hex SHA-256.
pub fn is_sha256(oid: &str) -> bool {
    oid.len() == 64 && oid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn lfs_key(oid: &str) -> StorePath {
    StorePath::from(format!("lfs/{}/{}/{}", &oid[0..2], &oid[2..4], oid))
}

fn part_key(upload_id: &str, part: u32) -> StorePath {
    StorePath::from(format!("tmp/parts/{upload_id}/{part:05}"))
}

pub type ByteStream = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

impl Storage {
    pub fn local(root: PathBuf) -> anyhow::Result<Storage> {
        std::fs::create_dir_all(&root)?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Storage { store: Arc::new(store), local_root: Some(root) })
    }

    /// Removes staging data that a crash left behind (local disk only; nothing else writes there).
    pub fn sweep_staging(&self) {
        if let Some(root) = &self.local_root {
            let tmp = root.join("tmp");
            if tmp.exists() {
                if let Err(e) = std::fs::remove_dir_all(&tmp) {
                    tracing::warn!(error = %e, "could not clear staging directory {}", tmp.display());
                }
            }
        }
    }

    /// Size of a stored object, or None.
    pub async fn object_size(&self, oid: &str) -> Result<Option<u64>, object_store::Error> {
        if !is_sha256(oid) {
            return Ok(None);
        }
        match self.store.head(&lfs_key(oid)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Streams `body` into a staging key while hashing; returns (size, sha256 hex).
    async fn stage<S, E>(&self, key: &StorePath, body: S, limit: Option<u64>) -> Result<(u64, String), PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let upload = self.store.put_multipart(key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, WRITE_CHUNK);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = body;
        let result: Result<(), PutError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if let Some(limit) = limit {
                    if size > limit {
                        return Err(PutError::SizeMismatch { expected: limit, actual: size });
                    }
                }
                hasher.update(&chunk);
                writer.wait_for_capacity(WRITE_CONCURRENCY).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await?;
                Ok((size, hex::encode(hasher.finalize())))
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Stores an object whose SHA-256 and size are known in advance. Nothing becomes visible
    /// unless the bytes match both.
    pub async fn put_verified<S, E>(&self, oid: &str, expected_size: u64, body: S) -> Result<(), PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let tmp = StorePath::from(format!("tmp/{}", uuid::Uuid::new_v4()));
        let (size, sha) = self.stage(&tmp, body, Some(expected_size)).await?;
        self.publish(&tmp, oid, expected_size, size, &sha).await
    }

    /// Stores bytes whose hash is not known yet (inline commit content); returns (size, oid).
    pub async fn put_content(&self, data: Bytes) -> Result<(u64, String), PutError> {
        let oid = hex::encode(Sha256::digest(&data));
        let size = data.len() as u64;
        if self.object_size(&oid).await? != Some(size) {
            self.put_verified(&oid, size, futures::stream::iter([Ok::<_, std::io::Error>(data)])).await?;
        }
        Ok((size, oid))
    }

    async fn publish(&self, tmp: &StorePath, oid: &str, expected_size: u64, size: u64, sha: &str) -> Result<(), PutError> {
        let verdict = if size != expected_size {
            Err(PutError::SizeMismatch { expected: expected_size, actual: size })
        } else if sha != oid {
            Err(PutError::HashMismatch { expected: oid.to_string(), actual: sha.to_string() })
        } else {
            Ok(())
        };
        match verdict {
            Ok(()) => {
                // Content-addressed: overwriting an existing object with the same bytes is harmless.
                self.store.rename(tmp, &lfs_key(oid)).await?;
                Ok(())
            }
            Err(e) => {
                let _ = self.store.delete(tmp).await;
                Err(e)
            }
        }
    }

    /// Stores one part of a multipart upload of exactly `size` bytes; returns its SHA-256 (its ETag).
    pub async fn put_part<S, E>(&self, upload_id: &str, part: u32, size: u64, body: S) -> Result<String, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let key = part_key(upload_id, part);
        let (actual, sha) = self.stage(&key, body, Some(size)).await?;
        if actual != size {
            let _ = self.store.delete(&key).await;
            return Err(PutError::SizeMismatch { expected: size, actual });
        }
        Ok(sha)
    }

    /// The ETag a stored part was given, if it exists.
    pub async fn part_exists(&self, upload_id: &str, part: u32) -> Result<bool, object_store::Error> {
        match self.store.head(&part_key(upload_id, part)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Joins parts 1..=count in order into the object, verifying size and SHA-256, then removes them.
    pub async fn complete_parts(&self, upload_id: &str, count: u32, oid: &str, expected_size: u64) -> Result<(), PutError> {
        let store = self.store.clone();
        let upload = upload_id.to_string();
        let parts = futures::stream::iter(1..=count)
            .then(move |n| {
                let store = store.clone();
                let key = part_key(&upload, n);
                async move { store.get(&key).await.map(|r| r.into_stream()) }
            })
            .try_flatten()
            .boxed();
        let result = self.put_verified(oid, expected_size, parts).await;
        self.abort_parts(upload_id, count).await;
        result
    }

    pub async fn abort_parts(&self, upload_id: &str, count: u32) {
        for n in 1..=count {
            let _ = self.store.delete(&part_key(upload_id, n)).await;
        }
    }

    /// Streams `[start, end)` of an object (the whole object when `range` is None).
    pub async fn read(&self, oid: &str, range: Option<std::ops::Range<u64>>) -> Result<ByteStream, object_store::Error> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let result = self.store.get_opts(&lfs_key(oid), options).await?;
        Ok(result.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// Reads a small byte range fully (headers of safetensors files).
    pub async fn read_range(&self, oid: &str, range: std::ops::Range<u64>) -> Result<Bytes, object_store::Error> {
        self.store.get_range(&lfs_key(oid), range).await
    }
}
