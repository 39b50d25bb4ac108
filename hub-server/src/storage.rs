//! LFS objects in object storage, content-addressed by SHA-256. An object becomes visible only
//! after its bytes hashed to its name at the declared size: bytes go to a temporary key first,
//! then move to `lfs/<aa>/<bb>/<oid>`.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, PutPayload};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;

use std::sync::Arc;

/// Part size of writes into S3 (its minimum); local disk takes smaller parts.
const S3_PART: usize = 5 * 1024 * 1024;
const LOCAL_PART: usize = 1024 * 1024;
/// Part buffers of uploads in flight, process-wide, unless configured.
pub const DEFAULT_UPLOAD_MEMORY: u64 = 128 * 1024 * 1024;
/// Read size when streaming a local file to a client.
const READ_CHUNK: usize = 256 * 1024;

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

/// The hash of parts 1..next of an upload; poisoned once a part arrives out of order.
struct RunningHash {
    next: u32,
    hasher: Option<Sha256>,
    poisoned: bool,
    /// When a part last arrived: uploads abandoned for longer than their URLs live are dropped.
    touched: std::time::Instant,
}

/// Running hashes older than the transfer URLs' lifetime belong to abandoned uploads.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(crate::lfs::URL_TTL_SECS as u64);

/// S3 copies objects up to 5 GiB in one request; larger ones are re-streamed.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// True for a well-formed lowercase hex SHA-256.
pub fn is_sha256(oid: &str) -> bool {
    oid.len() == 64 && oid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn lfs_key(oid: &str) -> StorePath {
    StorePath::from(format!("lfs/{}/{}/{}", &oid[0..2], &oid[2..4], oid))
}

/// The staging file of a local multipart upload and the marker of one of its parts.
fn local_part_paths(root: &std::path::Path, key: &str, part: u32) -> (PathBuf, PathBuf) {
    let dir = root.join("tmp").join("multipart");
    (dir.join(format!("{key}.bin")), dir.join(format!("{key}.{part:05}.done")))
}

fn native_key(key: &str) -> StorePath {
    StorePath::from(format!("tmp/multipart/{key}"))
}

/// A client multipart upload: our key, plus the store's own upload id when it is native.
struct UploadRef {
    key: String,
    native_id: Option<String>,
}

impl UploadRef {
    /// Upload ids travel in URL paths: `<uuid>` or `<uuid>-<hex of the store's upload id>`.
    fn parse(upload_id: &str) -> Option<UploadRef> {
        match upload_id.split_once('-') {
            None => Some(UploadRef { key: upload_id.to_string(), native_id: None }),
            Some((key, hex_id)) => {
                let id = String::from_utf8(hex::decode(hex_id).ok()?).ok()?;
                Some(UploadRef { key: key.to_string(), native_id: Some(id) })
            }
        }
    }
}

pub type ByteStream = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Hashes a body without storing it: Ok only if it is exactly `size` bytes hashing to `oid`.
async fn check_stream<S, E>(mut body: S, oid: &str, size: u64) -> Result<(), PutError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let mut hasher = OffThreadHasher::default();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
        received += chunk.len() as u64;
        if received > size {
            return Err(PutError::SizeMismatch { expected: size, actual: received });
        }
        hasher.update(chunk).await?;
    }
    if received != size {
        return Err(PutError::SizeMismatch { expected: size, actual: received });
    }
    let sha = hasher.finish().await?;
    if sha != oid {
        return Err(PutError::HashMismatch { expected: oid.to_string(), actual: sha });
    }
    Ok(())
}

/// Hashing at most this many buffers at once (all cores but one): a machine busy hashing
/// uploads still has a core for answering everyone else.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// Runs CPU work (hashing) on a blocking thread, within the hashing slots.
async fn hash_work<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, tokio::task::JoinError> {
    let _slot = hashing_slots().acquire().await.expect("never closed");
    tokio::task::spawn_blocking(work).await
}

/// Adds `buf` to a running hash (if any) on a blocking thread, handing the buffer back.
async fn hash_off_thread(hasher: &mut Option<Sha256>, buf: &mut Vec<u8>) -> Result<(), PutError> {
    let Some(mut h) = hasher.take() else { return Ok(()) };
    let data = std::mem::take(buf);
    let (h, data) = hash_work(move || {
        h.update(&data);
        (h, data)
    })
    .await
    .map_err(|e| PutError::Body(e.to_string()))?;
    *hasher = Some(h);
    *buf = data;
    Ok(())
}

/// SHA-256 over a stream of pieces, hashed a megabyte at a time on the blocking threads: hashing
/// at network speed would otherwise keep the async threads from everyone else's requests.
#[derive(Default)]
struct OffThreadHasher {
    hasher: Option<Sha256>,
    pending: Vec<Bytes>,
    pending_len: usize,
}

const HASH_BATCH: usize = 1024 * 1024;

impl OffThreadHasher {
    async fn update(&mut self, data: Bytes) -> Result<(), PutError> {
        self.pending_len += data.len();
        self.pending.push(data);
        if self.pending_len >= HASH_BATCH {
            self.hash_pending().await?;
        }
        Ok(())
    }

    async fn hash_pending(&mut self) -> Result<(), PutError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let mut h = self.hasher.take().unwrap_or_default();
        let h = hash_work(move || {
            for p in &pending {
                h.update(p);
            }
            h
        })
        .await
        .map_err(|e| PutError::Body(e.to_string()))?;
        self.hasher = Some(h);
        Ok(())
    }

    async fn finish(mut self) -> Result<String, PutError> {
        self.hash_pending().await?;
        Ok(hex::encode(self.hasher.unwrap_or_default().finalize()))
    }
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

/// Memory that part buffers of uploads in flight may hold, process-wide. An upload waits for
/// its share before reading more of its body (so strangers cannot grow memory by opening
/// uploads), and gives it back once the part is stored.
#[derive(Clone)]
pub struct UploadBudget {
    kib: Arc<tokio::sync::Semaphore>,
    total_kib: u32,
}

impl UploadBudget {
    pub fn new(bytes: u64) -> UploadBudget {
        let total_kib = (bytes / 1024).clamp(1024, u32::MAX as u64) as u32;
        UploadBudget { kib: Arc::new(tokio::sync::Semaphore::new(total_kib as usize)), total_kib }
    }

    /// Waits for `bytes` of the budget (at most all of it).
    pub async fn take(&self, bytes: usize) -> tokio::sync::OwnedSemaphorePermit {
        let kib = (bytes.div_ceil(1024) as u32).clamp(1, self.total_kib);
        self.kib.clone().acquire_many_owned(kib).await.expect("the budget's semaphore is never closed")
    }
}

/// An object being written part by part: bytes go to its final key, but it appears only on
/// `finish`. One part is buffered at a time, under the process-wide budget, and hashed (when
/// asked) off the async threads while it is stored.
pub struct PartWriter {
    upload: Box<dyn object_store::MultipartUpload>,
    part_size: usize,
    pending: Vec<Bytes>,
    pending_len: usize,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    budget: UploadBudget,
    hasher: Option<Sha256>,
}

impl PartWriter {
    pub async fn write(&mut self, data: Bytes) -> Result<(), object_store::Error> {
        if self.permit.is_none() {
            self.permit = Some(self.budget.take(self.part_size).await);
        }
        self.pending_len += data.len();
        self.pending.push(data);
        if self.pending_len >= self.part_size {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), object_store::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let parts = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let payload = PutPayload::from_iter(parts.iter().cloned());
        let stored = self.upload.put_part(payload);
        match self.hasher.take() {
            Some(mut h) => {
                let hashing = hash_work(move || {
                    for p in &parts {
                        h.update(p);
                    }
                    h
                });
                let (stored, hashed) = tokio::join!(stored, hashing);
                stored?;
                self.hasher = Some(hashed.map_err(|e| object_store::Error::Generic { store: "hash", source: e.into() })?);
            }
            None => stored.await?,
        }
        self.permit = None;
        Ok(())
    }

    /// Stores what is buffered and completes the object; returns the SHA-256 when hashing.
    pub async fn finish(mut self) -> Result<Option<String>, object_store::Error> {
        self.flush().await?;
        self.upload.complete().await?;
        Ok(self.hasher.map(|h| hex::encode(h.finalize())))
    }

    /// The SHA-256 of everything written so far (before `finish`): stores the buffered part.
    pub async fn digest(&mut self) -> Result<Option<String>, object_store::Error> {
        self.flush().await?;
        Ok(self.hasher.clone().map(|h| hex::encode(h.finalize())))
    }

    pub async fn abort(mut self) {
        let _ = self.upload.abort().await;
    }
}

/// An object listed from storage.
#[derive(Debug, Clone)]
pub struct ListedObject {
    /// The oid (LFS) or hash/id (Xet) the key names.
    pub name: String,
    pub size: u64,
    pub last_modified_ms: i64,
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

    /// A key as the native multipart API (which bypasses the prefix) must see it.
    fn native_path(&self, key: &StorePath) -> StorePath {
        if self.prefix.is_empty() {
            key.clone()
        } else {
            StorePath::from(format!("{}/{key}", self.prefix))
        }
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

    /// Streams `body` into `key` while hashing. The store publishes the object only when the
    /// upload completes, which happens only if `expected` (oid, size) matches, when given.
    async fn stage<S, E>(
        &self,
        key: &StorePath,
        body: S,
        limit: Option<u64>,
        expected: Option<(&str, u64)>,
    ) -> Result<(u64, String), PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let mut writer = self.begin(key, true).await?;
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
                writer.write(chunk).await?;
            }
            Ok(())
        }
        .await;
        let result = match result {
            Ok(()) => writer.digest().await.map_err(PutError::from),
            Err(e) => Err(e),
        };
        let checked = result.and_then(|sha| {
            let sha = sha.unwrap_or_default();
            match expected {
                Some((_, want)) if want != size => Err(PutError::SizeMismatch { expected: want, actual: size }),
                Some((oid, _)) if oid != sha => Err(PutError::HashMismatch { expected: oid.to_string(), actual: sha }),
                _ => Ok(sha),
            }
        });
        match checked {
            Ok(sha) => {
                writer.finish().await?;
                Ok((size, sha))
            }
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }

    /// Starts a part-by-part write of `key` under the upload budget.
    async fn begin(&self, key: &StorePath, hash: bool) -> Result<PartWriter, object_store::Error> {
        let upload = self.store.put_multipart(key).await?;
        let part_size = if self.local_root.is_some() { LOCAL_PART } else { S3_PART };
        Ok(PartWriter {
            upload,
            part_size,
            pending: Vec::new(),
            pending_len: 0,
            permit: None,
            budget: self.budget.clone(),
            hasher: hash.then(Sha256::new),
        })
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

    /// Starts a client multipart upload; returns its id (used in part URLs).
    pub async fn begin_multipart(&self) -> Result<String, object_store::Error> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        match &self.native_multipart {
            Some(mp) => {
                let id = mp.create_multipart(&self.native_path(&native_key(&key))).await?;
                Ok(format!("{key}-{}", hex::encode(id.as_bytes())))
            }
            None => Ok(key),
        }
    }

    /// Stores part `part` (1-based) of exactly `size` bytes at `offset` of an upload of `total`
    /// bytes; returns its ETag.
    pub async fn put_part<S, E>(&self, upload_id: &str, part: u32, offset: u64, size: u64, total: u64, body: S) -> Result<String, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let upload = UploadRef::parse(upload_id).ok_or_else(|| PutError::Body("malformed upload id".into()))?;
        match (&self.native_multipart, &upload.native_id, &self.local_root) {
            (Some(mp), Some(id), _) => {
                // A native part is sent in one request: buffered, under the process-wide budget.
                let _share = self.budget.take(size as usize).await;
                let mut buf = bytes::BytesMut::new();
                let mut body = body;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
                    if (buf.len() + chunk.len()) as u64 > size {
                        return Err(PutError::SizeMismatch { expected: size, actual: (buf.len() + chunk.len()) as u64 });
                    }
                    buf.extend_from_slice(&chunk);
                }
                if buf.len() as u64 != size {
                    return Err(PutError::SizeMismatch { expected: size, actual: buf.len() as u64 });
                }
                let id = id.clone();
                let part_id = mp
                    .put_part(&self.native_path(&native_key(&upload.key)), &id, part as usize - 1, PutPayload::from(buf.freeze()))
                    .await?;
                Ok(part_id.content_id)
            }
            (_, None, Some(root)) => self.put_local_part(root, &upload.key, part, offset, size, total, body).await,
            _ => Err(PutError::Body("this upload id does not belong to this storage".into())),
        }
    }

    /// Local disk: every part lands at its offset in one staging file, hashed on the way in
    /// when parts come in order (huggingface_hub sends them one after another), so completing
    /// is a rename.
    #[allow(clippy::too_many_arguments)]
    async fn put_local_part<S, E>(
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

    /// Whether a part of a local upload is stored (native parts are checked by the store).
    pub async fn part_exists(&self, upload_id: &str, part: u32) -> Result<bool, object_store::Error> {
        let Some(upload) = UploadRef::parse(upload_id) else { return Ok(false) };
        match (&upload.native_id, &self.local_root) {
            (Some(_), _) => Ok(true),
            (None, Some(root)) => Ok(local_part_paths(root, &upload.key, part).1.exists()),
            (None, None) => Ok(false),
        }
    }

    /// Completes a client multipart upload of `count` parts (with the ETags the client got),
    /// verifies size and SHA-256 of the whole, and only then publishes it under its oid.
    pub async fn complete_multipart(&self, upload_id: &str, etags: Vec<String>, oid: &str, expected_size: u64) -> Result<(), PutError> {
        let upload = UploadRef::parse(upload_id).ok_or_else(|| PutError::Body("malformed upload id".into()))?;
        let count = etags.len() as u32;
        match (&self.native_multipart, &upload.native_id, &self.local_root) {
            (Some(mp), Some(id), _) => {
                let tmp = native_key(&upload.key);
                let parts = etags.into_iter().map(|content_id| PartId { content_id }).collect();
                // Not aborted on failure: the client may still upload missing parts and retry.
                if let Err(e) = mp.complete_multipart(&self.native_path(&tmp), &id.clone(), parts).await {
                    return Err(PutError::Parts(format!("parts were not uploaded or their ETags do not match: {e}")));
                }
                let result = self.publish_from(&tmp, oid, expected_size).await;
                let _ = self.store.delete(&tmp).await;
                result
            }
            (_, None, Some(root)) => {
                let (staging, _) = local_part_paths(root, &upload.key, 1);
                let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&upload.key);
                let known = running.filter(|r| !r.poisoned && r.next == count + 1).and_then(|r| r.hasher);
                let path = staging.clone();
                let checked = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
                    let len = std::fs::metadata(&path)?.len();
                    let sha = match known {
                        Some(h) => h,
                        None => {
                            // Parts came out of order (or to another process): read the file back.
                            use std::io::Read;
                            let mut f = std::fs::File::open(&path)?;
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
                })
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
                    let _ = tokio::fs::remove_file(local_part_paths(root, &upload.key, n).1).await;
                }
                verdict
            }
            _ => Err(PutError::Body("this upload id does not belong to this storage".into())),
        }
    }

    /// Checks a completed temporary object, then publishes it under its oid.
    async fn publish_from(&self, tmp: &StorePath, oid: &str, expected_size: u64) -> Result<(), PutError> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = self.store.get(tmp).await?.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let sha = hex::encode(hasher.finalize());
        if size != expected_size {
            return Err(PutError::SizeMismatch { expected: expected_size, actual: size });
        }
        if sha != oid {
            return Err(PutError::HashMismatch { expected: oid.to_string(), actual: sha });
        }
        if size <= MAX_SINGLE_COPY {
            self.store.copy(tmp, &lfs_key(oid)).await?;
            Ok(())
        } else {
            let stream = self.store.get(tmp).await?.into_stream();
            self.put_verified(oid, expected_size, stream).await
        }
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
            // object_store reads local files in 8 KiB chunks; large reads halve throughput.
            GetResultPayload::File(file, _) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut file = tokio::fs::File::from_std(file);
                file.seek(std::io::SeekFrom::Start(range.start))
                    .await
                    .map_err(|e| object_store::Error::Generic { store: "local", source: e.into() })?;
                Ok(tokio_util::io::ReaderStream::with_capacity(file.take(range.end - range.start), READ_CHUNK).boxed())
            }
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
