//! SHA-256 of uploads, computed on the blocking threads within a bounded number of hashing
//! slots, so hashing at network speed does not starve the async threads.

use super::PutError;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

/// Hashes a body without storing it: Ok only if it is exactly `size` bytes hashing to `oid`.
pub(super) async fn check_stream<S, E>(mut body: S, oid: &str, size: u64) -> Result<(), PutError>
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
pub(super) async fn hash_work<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, tokio::task::JoinError> {
    let _slot = hashing_slots().acquire().await.expect("never closed");
    tokio::task::spawn_blocking(work).await
}

/// Adds `buf` to a running hash (if any) on a blocking thread, handing the buffer back.
pub(super) async fn hash_off_thread(hasher: &mut Option<Sha256>, buf: &mut Vec<u8>) -> Result<(), PutError> {
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
