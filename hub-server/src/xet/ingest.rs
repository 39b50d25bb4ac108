//! Checking what clients upload: xorbs (every chunk unpacks to its stated size, the chunks hash
//! to the xorb's name) and shards (every file term names stored chunks, proves possession with
//! its verification hash, and the terms hash to the file's name).

use super::chunks::{chunk_hash, ChunkReader, MAX_CHUNKS, MAX_UNPACKED};
use super::layout::{encode_chunks, encode_terms, ChunkMeta, Term};
use crate::app::AppState;
use crate::db::XorbRow;
use crate::error::{ApiError, ApiResult};
use crate::storage::XetKey;
use axum::body::Body;
use futures::StreamExt;
use std::collections::HashSet;
use xet_core_structures::merklehash::{file_hash, xorb_hash, MerkleHash};
use xet_core_structures::metadata_shard::chunk_verification::range_hash_from_chunks;
use xet_core_structures::metadata_shard::constants::hash_is_global_dedup_eligible;
use xet_core_structures::metadata_shard::streaming_shard::MDBMinimalShard;

/// A xorb body may carry up to 64 MiB of data, 8 header bytes per chunk (64 KiB) and an old
/// client's footer (~400 KiB): anything longer is refused while it streams.
const MAX_XORB_BODY: u64 = MAX_UNPACKED + 1024 * 1024;

/// Stores a xorb after checking it as it streams in; false when the hub had it already.
#[tracing::instrument(skip_all, fields(xorb = %hash.hex()))]
pub async fn ingest_xorb(state: &AppState, hash: MerkleHash, body: Body) -> ApiResult<bool> {
    let hex = hash.hex();
    let mut stream = body.into_data_stream();
    if state.db.xorb(&hex).await?.is_some() {
        // Read (and drop) the body anyway: answering first would close the client's connection.
        let mut received = 0u64;
        while let Some(piece) = stream.next().await {
            received += piece.map_err(|e| ApiError::bad_request(format!("could not read the xorb: {e}")))?.len() as u64;
            if received > MAX_XORB_BODY {
                return Err(too_large());
            }
        }
        return Ok(false);
    }
    let _permit = state.xet.xorb_uploads.acquire().await.map_err(ApiError::internal)?;
    let mut writer = state.storage.begin_xet(&XetKey::Xorb(hex.clone())).await?;
    let checked: ApiResult<(Vec<ChunkMeta>, u64, u64)> = async {
        let mut reader = ChunkReader::default();
        let mut chunks: Vec<ChunkMeta> = Vec::new();
        let (mut received, mut stored, mut unpacked) = (0u64, 0u64, 0u64);
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| ApiError::bad_request(format!("could not read the xorb: {e}")))?;
            received += piece.len() as u64;
            if received > MAX_XORB_BODY {
                return Err(too_large());
            }
            reader.push(&piece);
            while let Some(chunk) = reader.next_chunk().map_err(|e| ApiError::bad_request(format!("invalid xorb: {e}")))? {
                if chunks.len() == MAX_CHUNKS {
                    return Err(ApiError::bad_request(format!("invalid xorb: more than {MAX_CHUNKS} chunks")));
                }
                unpacked += chunk.data.len() as u64;
                if unpacked > MAX_UNPACKED {
                    return Err(ApiError::bad_request(format!("invalid xorb: more than {MAX_UNPACKED} bytes of data")));
                }
                stored += chunk.stored.len() as u64;
                chunks.push(ChunkMeta { hash: chunk_hash(&chunk.data), end: stored as u32, size: chunk.data.len() as u32 });
                writer.write(chunk.stored).await?;
            }
        }
        reader.finish().map_err(|e| ApiError::bad_request(format!("invalid xorb: {e}")))?;
        if chunks.is_empty() {
            return Err(ApiError::bad_request("invalid xorb: it holds no chunks"));
        }
        let computed = xorb_hash(&chunks.iter().map(|c| (c.hash, c.size as u64)).collect::<Vec<_>>());
        if computed != hash {
            return Err(ApiError::bad_request(format!("xorb hash mismatch: the chunks hash to {}, not {hex}", computed.hex())));
        }
        Ok((chunks, stored, unpacked))
    }
    .await;
    let (chunks, stored, unpacked) = match checked {
        Ok(c) => c,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    writer.finish().await?;
    let row =
        XorbRow { hash: hex, stored_len: stored, unpacked_len: unpacked, num_chunks: chunks.len() as u64, chunks: encode_chunks(&chunks) };
    Ok(state.db.insert_xorb(&row).await?)
}

fn too_large() -> ApiError {
    ApiError::payload_too_large(format!("a xorb body may not exceed {MAX_XORB_BODY} bytes"))
}

const SHARD_TAG: [u8; 32] = [
    b'H', b'F', b'R', b'e', b'p', b'o', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0, 85, 105, 103, 69, 106, 123, 129, 87, 131, 165,
    189, 217, 92, 205, 209, 74, 169,
];

/// A file a shard registers, checked.
struct CheckedFile {
    hash: MerkleHash,
    sha256: String,
    size: u64,
    terms: Vec<Term>,
}

/// Checks a shard and registers its files for `repo_id`; its xorbs join the global dedup index.
#[tracing::instrument(skip_all, fields(repo = %repo_id))]
pub async fn register_shard(state: &AppState, repo_id: &str, body: Body) -> ApiResult<()> {
    let limit = state.settings.xet_max_shard_bytes;
    let _permit = state.xet.shard_uploads.acquire().await.map_err(ApiError::internal)?;
    let bytes = axum::body::to_bytes(body, limit as usize)
        .await
        .map_err(|_| ApiError::payload_too_large(format!("a shard may not exceed {limit} bytes (HUB_XET_MAX_SHARD_BYTES)")))?;
    if bytes.len() < 48 || bytes[..32] != SHARD_TAG || bytes[32..40] != 2u64.to_le_bytes() {
        return Err(ApiError::bad_request("invalid shard: not a version 2 Xet shard"));
    }
    let shard = MDBMinimalShard::from_reader_async(&mut &bytes[..], true, true, Some(bytes.len() as u64))
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid shard: {e}")))?;

    let mut files = Vec::with_capacity(shard.num_files());
    let mut referenced: HashSet<MerkleHash> = HashSet::new();
    let mut file_starts: HashSet<(MerkleHash, u32)> = HashSet::new();
    let mut total_chunks = 0u64;
    for i in 0..shard.num_files() {
        let Some(view) = shard.file(i) else { break };
        let name = view.file_hash().hex();
        let bad = |why: String| ApiError::bad_request(format!("invalid shard: file {name}: {why}"));
        if !view.contains_verification() {
            return Err(bad("shard uploads must carry a verification entry per term".into()));
        }
        let Some(ext) = view.metadata_ext() else {
            return Err(bad("the file's SHA-256 (FileMetadataExt) is missing".into()));
        };
        let mut all_chunks: Vec<(MerkleHash, u64)> = Vec::new();
        let mut terms = Vec::with_capacity(view.num_entries());
        for j in 0..view.num_entries() {
            let entry = view.entry(j);
            let layout = super::layout(state, &entry.xorb_hash)
                .await?
                .ok_or_else(|| bad(format!("term {j}: xorb {} is not stored; upload it before the shard", entry.xorb_hash.hex())))?;
            let (start, end) = (entry.chunk_index_start, entry.chunk_index_end);
            if start >= end || end as usize > layout.chunks.len() {
                return Err(bad(format!("term {j}: chunks {start}..{end} are outside the xorb's {}", layout.chunks.len())));
            }
            let chunks = &layout.chunks[start as usize..end as usize];
            let unpacked: u64 = chunks.iter().map(|c| c.size as u64).sum();
            if unpacked != entry.unpacked_segment_bytes as u64 {
                return Err(bad(format!("term {j}: the chunks hold {unpacked} bytes, not {}", entry.unpacked_segment_bytes)));
            }
            let hashes: Vec<MerkleHash> = chunks.iter().map(|c| c.hash).collect();
            if range_hash_from_chunks(&hashes) != view.verification(j).range_hash {
                return Err(bad(format!("term {j}: the verification hash does not match the stored chunks")));
            }
            total_chunks += chunks.len() as u64;
            if total_chunks > state.settings.xet_max_shard_chunks {
                return Err(ApiError::payload_too_large(format!(
                    "a shard may reference at most {} chunks (HUB_XET_MAX_SHARD_CHUNKS)",
                    state.settings.xet_max_shard_chunks
                )));
            }
            if j == 0 {
                file_starts.insert((entry.xorb_hash, start));
            }
            all_chunks.extend(chunks.iter().map(|c| (c.hash, c.size as u64)));
            referenced.insert(entry.xorb_hash);
            terms.push(Term { xorb: entry.xorb_hash, start, end, unpacked: unpacked as u32 });
        }
        let computed = file_hash(&all_chunks);
        if computed != view.file_hash() {
            return Err(bad(format!("the terms hash to {}", computed.hex())));
        }
        let size = all_chunks.iter().map(|(_, s)| s).sum();
        files.push(CheckedFile { hash: view.file_hash(), sha256: ext.sha256.hex(), size, terms });
    }

    // The xorb section (new xorbs of this upload) feeds global dedup: it must describe the
    // stored xorbs exactly, or other clients would be told to reference chunks that are not there.
    let mut shard_xorbs = Vec::new();
    let mut dedup = Vec::new();
    for x in 0..shard.num_xorb() {
        let Some(view) = shard.xorb(x) else { break };
        let hash = view.xorb_hash();
        let bad = |why: String| ApiError::bad_request(format!("invalid shard: xorb {}: {why}", hash.hex()));
        let layout = super::layout(state, &hash).await?.ok_or_else(|| bad("it is not stored; upload it before the shard".into()))?;
        if view.num_entries() != layout.chunks.len() {
            return Err(bad(format!("the shard lists {} chunks; the stored xorb has {}", view.num_entries(), layout.chunks.len())));
        }
        for (i, c) in layout.chunks.iter().enumerate() {
            let entry = view.chunk(i);
            if entry.chunk_hash != c.hash || entry.unpacked_segment_bytes != c.size {
                return Err(bad(format!("chunk {i} does not match the stored xorb")));
            }
            if hash_is_global_dedup_eligible(&c.hash) || file_starts.contains(&(hash, i as u32)) {
                dedup.push(c.hash.hex());
            }
        }
        referenced.insert(hash);
        shard_xorbs.push(hash.hex());
    }

    // Used now: garbage collection keeps them (its deletes re-check this). One that went
    // before this point cannot be referenced any more.
    let referenced: Vec<String> = referenced.iter().map(|h| h.hex()).collect();
    state.db.touch_xorbs(&referenced).await?;
    for x in &referenced {
        if state.db.xorb(x).await?.is_none() {
            return Err(ApiError::bad_request(format!("invalid shard: xorb {x} is not stored; upload it again")));
        }
    }
    if !shard_xorbs.is_empty() {
        let mut stored = Vec::with_capacity(bytes.len());
        let copy = shard.clone();
        let stored = tokio::task::spawn_blocking(move || copy.serialize_xorb_subset_only(&mut stored, None, |_| true).map(|_| stored))
            .await?
            .map_err(|e| ApiError::internal(format!("could not re-serialize a checked shard: {e}")))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        state.storage.put_xet(&XetKey::Shard(id.clone()), stored.into()).await?;
        state.db.insert_shard(&id, &shard_xorbs, &dedup).await?;
    }
    for f in &files {
        state.db.insert_xet_file(&f.hash.hex(), f.size, &encode_terms(&f.terms)).await?;
        state.db.register_xet_file(repo_id, &f.hash.hex(), &f.sha256).await?;
    }
    Ok(())
}
