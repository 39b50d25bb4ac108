//! Writing and checking what a download receives: bytes streamed to disk (hashed on the way
//! or chunk by chunk behind parallel ranges), whole-file hashing, the size and SHA-256 check
//! before a blob is published, and the glob patterns that pick files.

use super::{is_sha256, FileMetadata};
use crate::error::{HubError, Result};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

const WRITE_BUFFER: usize = 1024 * 1024;

pub(super) fn globs(patterns: &[&str]) -> Result<Option<globset::GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(false)
            .build()
            .map_err(|e| HubError::InvalidResponse(format!("bad pattern {p:?}: {e}")))?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| HubError::InvalidResponse(e.to_string()))
}

pub(super) async fn write_stream(
    file: &mut tokio::fs::File,
    resp: reqwest::Response,
    progress: &dyn crate::api::Progress,
    mut hasher: Option<&mut Sha256>,
) -> Result<u64> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::with_capacity(WRITE_BUFFER);
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&chunk);
        }
        buf.extend_from_slice(&chunk);
        if buf.len() >= WRITE_BUFFER {
            file.write_all(&buf).await?;
            buf.clear();
        }
    }
    file.write_all(&buf).await?;
    Ok(total)
}

/// Hashes a file being filled by parallel ranges: each chunk as soon as it and every chunk
/// before it are on disk (read back from the page cache), so little is left when the last
/// range lands.
pub(crate) async fn hash_in_order(
    file: PathBuf,
    size: u64,
    chunk: u64,
    finished: std::sync::Arc<(std::sync::Mutex<HashSet<u64>>, tokio::sync::Notify)>,
) -> Result<String> {
    let count = size.div_ceil(chunk);
    let mut hasher = Some(Sha256::new());
    for i in 0..count {
        loop {
            let notified = finished.1.notified();
            if finished.0.lock().unwrap_or_else(|e| e.into_inner()).contains(&i) {
                break;
            }
            notified.await;
        }
        let (path, mut h) = (file.clone(), hasher.take().expect("hasher is put back after each chunk"));
        hasher = Some(
            tokio::task::spawn_blocking(move || -> std::io::Result<Sha256> {
                use std::io::{Read, Seek};
                let mut f = std::fs::File::open(path)?;
                f.seek(std::io::SeekFrom::Start(i * chunk))?;
                let mut left = chunk.min(size - i * chunk);
                let mut buf = vec![0u8; 1024 * 1024];
                while left > 0 {
                    let n = f.read(&mut buf[..left.min(1024 * 1024) as usize])?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    left -= n as u64;
                }
                Ok(h)
            })
            .await
            .map_err(|e| HubError::InvalidResponse(e.to_string()))??,
        );
    }
    Ok(hex::encode(hasher.expect("hasher").finalize()))
}

/// Feeds a whole file to a hasher.
pub(super) fn hash_into(path: &Path, mut h: Sha256) -> std::io::Result<Sha256> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4 * 1024 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h);
        }
        h.update(&buf[..n]);
    }
}

/// Checks size, and SHA-256 when the ETag is one (LFS files), before the blob is published.
/// `actual` is the SHA-256 computed while downloading.
pub(super) async fn verify(partial: &Path, path: &str, meta: &FileMetadata, actual: &str) -> Result<()> {
    let len = tokio::fs::metadata(partial).await?.len();
    if len != meta.size {
        return Err(HubError::SizeMismatch { path: path.into(), expected: meta.size, actual: len });
    }
    if !is_sha256(&meta.etag) {
        return Ok(());
    }
    if actual != meta.etag.to_ascii_lowercase() {
        let _ = tokio::fs::remove_file(partial).await;
        return Err(HubError::HashMismatch { path: path.into(), expected: meta.etag.clone(), actual: actual.to_string() });
    }
    Ok(())
}

/// Opens a download's preallocated `partial` file of `size` bytes and the log of the blocks of
/// `block` bytes already in it (`<partial>.parts`), shared by the ranged HTTP download and the Xet
/// one, so either may finish what the other began. A partial of another size starts over.
/// Returns the blocks done and how many bytes they hold.
pub(crate) fn open_partial(partial: &Path, size: u64, block: u64) -> std::io::Result<(PathBuf, HashSet<u64>, u64)> {
    let parts_log = partial.with_extension("incomplete.parts");
    let done: HashSet<u64> = if partial.metadata().is_ok_and(|m| m.len() == size) {
        std::fs::read_to_string(&parts_log).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
    } else {
        let f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(partial)?;
        f.set_len(size)?;
        let _ = std::fs::remove_file(&parts_log);
        HashSet::new()
    };
    let bytes = done.iter().map(|i| block.min(size.saturating_sub(i * block))).sum();
    Ok((parts_log, done, bytes))
}
