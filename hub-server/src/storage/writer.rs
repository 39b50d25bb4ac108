//! Writing an object part by part: the process-wide memory budget for part buffers, the
//! part writer that hashes while it stores, and staging a body under its final key.

use super::hashing::hash_work;
use super::{PutError, Storage};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path as StorePath;
use object_store::PutPayload;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Part size of writes into S3 (its minimum); local disk takes smaller parts.
const S3_PART: usize = 5 * 1024 * 1024;
const LOCAL_PART: usize = 1024 * 1024;

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

impl Storage {
    /// Streams `body` into `key` while hashing. The store publishes the object only when the
    /// upload completes, which happens only if `expected` (oid, size) matches, when given.
    pub(super) async fn stage<S, E>(
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
    pub(super) async fn begin(&self, key: &StorePath, hash: bool) -> Result<PartWriter, object_store::Error> {
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
}
