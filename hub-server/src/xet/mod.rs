//! Xet: content-defined chunks, deduplicated across every repo, stored in xorbs; files are lists
//! of chunk ranges registered by shards. The hub is its own CAS (../shared/xet-protocol.md):
//! it checks every xorb and shard it is sent, answers reconstructions with signed per-range
//! URLs, answers global dedup queries with HMAC-keyed shards, and reassembles files itself for
//! clients that do not speak Xet.

pub mod chunks;
mod dedup;
mod ingest;
pub mod layout;
mod reassemble;
mod reconstruct;
pub mod token;

pub use dedup::dedup_shard;
pub use ingest::{ingest_xorb, register_shard};
pub use reassemble::{sha256_of, stream_range};
pub use reconstruct::{plan_fetches, Fetch, Reconstruction};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use layout::{decode_chunks, XorbLayout};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use xet_core_structures::merklehash::MerkleHash;

/// Shared Xet state of one hub process: limits on concurrent uploads and a cache of xorb chunk
/// tables (immutable once stored, so every replica may cache them).
pub struct XetState {
    /// Xorb bodies being checked and stored at once (each holds a chunk and a part buffer).
    pub xorb_uploads: tokio::sync::Semaphore,
    /// Shard bodies being checked at once (each is read whole, up to the shard size limit).
    pub shard_uploads: tokio::sync::Semaphore,
    layouts: Mutex<HashMap<MerkleHash, Arc<XorbLayout>>>,
}

/// Chunk tables kept in memory (at most ~320 KiB each; typically ~40 KiB).
const LAYOUT_CACHE: usize = 256;

impl XetState {
    pub fn new(xorb_uploads: usize, shard_uploads: usize) -> XetState {
        XetState {
            xorb_uploads: tokio::sync::Semaphore::new(xorb_uploads.max(1)),
            shard_uploads: tokio::sync::Semaphore::new(shard_uploads.max(1)),
            layouts: Mutex::new(HashMap::new()),
        }
    }
}

/// The 64-hex string form of a Xet hash, or a 400 naming what was wrong.
pub fn parse_hash(hex: &str, what: &str) -> ApiResult<MerkleHash> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ApiError::bad_request(format!("{what} must be 64 lowercase hex characters")));
    }
    MerkleHash::from_hex(hex).map_err(|_| ApiError::bad_request(format!("{what} must be 64 lowercase hex characters")))
}

/// A stored xorb's chunk table, from the cache or the database.
pub async fn layout(state: &AppState, hash: &MerkleHash) -> ApiResult<Option<Arc<XorbLayout>>> {
    if let Some(l) = state.xet.layouts.lock().unwrap_or_else(|e| e.into_inner()).get(hash) {
        return Ok(Some(l.clone()));
    }
    let Some(row) = state.db.xorb(&hash.hex()).await? else { return Ok(None) };
    let chunks = decode_chunks(&row.chunks).ok_or_else(|| ApiError::internal(format!("xorb {} has a corrupt chunk table", row.hash)))?;
    let l = Arc::new(XorbLayout { hash: *hash, chunks });
    let mut cache = state.xet.layouts.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= LAYOUT_CACHE {
        cache.clear();
    }
    cache.insert(*hash, l.clone());
    Ok(Some(l))
}
