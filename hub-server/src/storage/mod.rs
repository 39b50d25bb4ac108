//! LFS objects in object storage, content-addressed by SHA-256. An object becomes visible only
//! after its bytes hashed to its name at the declared size: bytes go to a temporary key first,
//! then move to `lfs/<aa>/<bb>/<oid>`.
//!
//! This file holds the `Storage` type, its constructors and its object API (LFS objects, Xet
//! objects); writing part by part, hashing, client multipart uploads (S3 and local disk) and
//! listing live in the submodules.

mod hashing;
mod listing;
mod local;
mod multipart;
mod writer;

pub use listing::ListedObject;
pub use writer::{PartWriter, UploadBudget};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use hashing::check_stream;
use local::{RunningHash, ABANDONED_AFTER};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::multipart::MultipartStore;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, PutPayload};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Part buffers of uploads in flight, process-wide, unless configured.
pub const DEFAULT_UPLOAD_MEMORY: u64 = 128 * 1024 * 1024;
/// Read size when streaming a local file to a client: each read is one task on a blocking
/// thread, so larger reads mean fewer hand-offs (see `file_stream`).
const READ_CHUNK: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("object size mismatch: expected {expected} bytes, received {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("object hash mismatch: expected sha256 {expected}, received bytes hash to {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error("{0}")]
    Parts(String),
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The same store's native multipart API (S3), onto which client multipart uploads map 1:1.
    native_multipart: Option<Arc<dyn MultipartStore>>,
    /// Root directory when the store is local disk (for sweeping abandoned staging files).
    local_root: Option<PathBuf>,
    /// SHA-256 of local multipart uploads so far, while their parts arrive in order.
    running: Arc<std::sync::Mutex<HashMap<String, RunningHash>>>,
    /// How long a local multipart upload may go without a part before its running hash is dropped.
    abandoned_after: std::time::Duration,
    /// Part buffers of uploads in flight, process-wide.
    budget: UploadBudget,
    /// Key prefix within the bucket (`s3://bucket/prefix`); `store` applies it itself, the
    /// native multipart calls get it from `native_path`.
    prefix: String,
}

/// True for a well-formed lowercase hex SHA-256.
pub fn is_sha256(oid: &str) -> bool {
    oid.len() == 64 && oid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn lfs_key(oid: &str) -> StorePath {
    StorePath::from(format!("lfs/{}/{}/{}", &oid[0..2], &oid[2..4], oid))
}

pub type ByteStream = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Streams `range` of a local file, READ_CHUNK at a time: each chunk is one positioned read,
/// on a blocking thread, straight into the buffer that goes to the client. (tokio::fs reads
/// through a buffer of its own, one blocking task per 256 KiB, and copies out of it; under 100
/// downloads those hand-offs were a good part of what kept the async threads from requests.)
fn file_stream(file: std::fs::File, range: std::ops::Range<u64>) -> ByteStream {
    let file = Arc::new(file);
    futures::stream::try_unfold(range.start, move |at| {
        let file = file.clone();
        async move {
            if at >= range.end {
                return Ok(None);
            }
            let len = (range.end - at).min(READ_CHUNK as u64) as usize;
            let chunk = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Some((chunk, at + len as u64)))
        }
    })
    .boxed()
}

/// What lives in object storage besides LFS objects, each under its own typed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XetKey {
    /// A xorb's chunks as uploaded (no footer), by its Xet hash.
    Xorb(String),
    /// A registered shard, by the id the hub gave it.
    Shard(String),
}

impl XetKey {
    fn path(&self) -> StorePath {
        match self {
            XetKey::Xorb(h) => StorePath::from(format!("xet/xorbs/{}/{h}", &h[..2.min(h.len())])),
            XetKey::Shard(id) => StorePath::from(format!("xet/shards/{id}")),
        }
    }
}

impl Storage {
    pub fn local(root: PathBuf) -> anyhow::Result<Storage> {
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Storage {
            store: Arc::new(store),
            native_multipart: None,
            local_root: Some(root),
            running: Default::default(),
            abandoned_after: ABANDONED_AFTER,
            budget: UploadBudget::new(DEFAULT_UPLOAD_MEMORY),
            prefix: String::new(),
        })
    }

    /// `s3://bucket`, configured by the standard `AWS_*` variables (endpoint, region, keys,
    /// `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`; path-style by default).
    /// Under `prefix` (may be empty), so several hubs (or test runs) can share one bucket.
    /// A request that fails for want of an answer (connection refused, 5xx, a timeout) is
    /// retried `max_retries` times with backoff: an S3 server that is down costs a request a few
    /// seconds, then a 503, instead of object_store's default of ten retries (~13 s).
    pub fn s3(bucket: &str, prefix: &str, max_retries: usize) -> anyhow::Result<Storage> {
        let retry = object_store::RetryConfig { max_retries, ..Default::default() };
        let s3 = Arc::new(AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry).build()?);
        let prefix = prefix.trim_matches('/').to_string();
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            s3.clone()
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3.clone() as Arc<dyn ObjectStore>, prefix.as_str()))
        };
        Ok(Storage {
            store,
            native_multipart: Some(s3),
            local_root: None,
            running: Default::default(),
            abandoned_after: ABANDONED_AFTER,
            budget: UploadBudget::new(DEFAULT_UPLOAD_MEMORY),
            prefix,
        })
    }

    /// The storage a `HUB_STORAGE_URL` names (`file:///path`, `s3://bucket`), or local disk
    /// under `default_root`.
    pub fn from_url(url: Option<&str>, default_root: PathBuf, s3_max_retries: usize) -> anyhow::Result<Storage> {
        match url.filter(|u| !u.is_empty()) {
            None => Storage::local(default_root),
            Some(u) if u.starts_with("file://") => Storage::local(PathBuf::from(&u["file://".len()..])),
            Some(u) if u.starts_with("s3://") => {
                let (bucket, prefix) = u["s3://".len()..].split_once('/').unwrap_or((&u["s3://".len()..], ""));
                if bucket.is_empty() || prefix.split('/').any(|p| p == "." || p == "..") {
                    anyhow::bail!("HUB_STORAGE_URL must be s3://BUCKET or s3://BUCKET/PREFIX; got {u:?}");
                }
                Storage::s3(bucket, prefix, s3_max_retries)
            }
            Some(u) => anyhow::bail!("unsupported HUB_STORAGE_URL {u:?}: use file:///path or s3://bucket"),
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

    /// Sets how much memory part buffers of uploads may hold, process-wide.
    pub fn with_upload_memory(mut self, bytes: u64) -> Storage {
        self.budget = UploadBudget::new(bytes);
        self
    }

    /// Stores an object whose SHA-256 and size are known in advance. The bytes go straight to
    /// the object's key, but the upload completes (and the object appears) only if they match.
    pub async fn put_verified<S, E>(&self, oid: &str, expected_size: u64, body: S) -> Result<(), PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        if !is_sha256(oid) {
            return Err(PutError::HashMismatch { expected: oid.to_string(), actual: "(not a sha256)".into() });
        }
        if self.object_size(oid).await? == Some(expected_size) {
            // Stored already (another repo uploaded it): the uploader still proves possession
            // by sending bytes that hash to the oid, but the stored copy is shared, not rewritten.
            return check_stream(body, oid, expected_size).await;
        }
        self.stage(&lfs_key(oid), body, Some(expected_size), Some((oid, expected_size))).await?;
        Ok(())
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

    /// Streams `[start, end)` of an object (the whole object when `range` is None).
    pub async fn read(&self, oid: &str, range: Option<std::ops::Range<u64>>) -> Result<ByteStream, object_store::Error> {
        self.stream(&lfs_key(oid), range).await
    }

    async fn stream(&self, key: &StorePath, range: Option<std::ops::Range<u64>>) -> Result<ByteStream, object_store::Error> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let result = self.store.get_opts(key, options).await?;
        let range = result.range.clone();
        match result.payload {
            // object_store would stream a local file in 8 KiB reads: half the throughput.
            GetResultPayload::File(file, _) => Ok(file_stream(file, range)),
            GetResultPayload::Stream(s) => Ok(s.map_err(std::io::Error::other).boxed()),
        }
    }

    /// Reads a small byte range fully (headers of safetensors files).
    pub async fn read_range(&self, oid: &str, range: std::ops::Range<u64>) -> Result<Bytes, object_store::Error> {
        self.store.get_range(&lfs_key(oid), range).await
    }

    /// Starts writing a Xet object, part by part under the upload budget.
    pub async fn begin_xet(&self, key: &XetKey) -> Result<PartWriter, object_store::Error> {
        self.begin(&key.path(), false).await
    }

    pub async fn put_xet(&self, key: &XetKey, data: Bytes) -> Result<(), object_store::Error> {
        self.store.put(&key.path(), PutPayload::from(data)).await.map(|_| ())
    }

    pub async fn xet_exists(&self, key: &XetKey) -> Result<bool, object_store::Error> {
        match self.store.head(&key.path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads a whole Xet object (shards: bounded by the shard size limit).
    pub async fn get_xet(&self, key: &XetKey) -> Result<Bytes, object_store::Error> {
        self.store.get(&key.path()).await?.bytes().await
    }

    /// Streams `[start, end)` of a Xet object.
    pub async fn read_xet(&self, key: &XetKey, range: std::ops::Range<u64>) -> Result<ByteStream, object_store::Error> {
        self.stream(&key.path(), Some(range)).await
    }

    pub async fn delete_xet(&self, key: &XetKey) -> Result<(), object_store::Error> {
        match self.store.delete(&key.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_lfs(&self, oid: &str) -> Result<(), object_store::Error> {
        match self.store.delete(&lfs_key(oid)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
