//! A repo's objects: the large-file content (by SHA-256) each repo may see. Bytes are stored
//! once — an LFS object, or a Xet file made of deduplicated chunks — but visibility is per repo.
//! Content enters a repo by being uploaded to it (LFS upload, a Xet shard registered with a write
//! token for it), or by a commit or push from someone who can read a repo that already holds it.
//! Everything that serves or accepts content by oid asks here first, and content a repo does not
//! hold answers exactly as content the hub does not have.

use crate::app::AppState;
use crate::auth::Caller;
pub use crate::db::HeldObject;
use crate::error::{ApiError, ApiResult};
use crate::storage::ByteStream;

/// The content of `oid` if `repo_id` holds it.
pub async fn held(state: &AppState, repo_id: &str, oid: &str) -> ApiResult<Option<HeldObject>> {
    Ok(state.db.held_object(repo_id, oid).await?)
}

/// `held` for readers, from the read cache while it is valid (writers ask the database).
pub async fn held_for_read(state: &AppState, repo_id: &str, oid: &str) -> ApiResult<Option<HeldObject>> {
    let key = (repo_id.to_string(), oid.to_string());
    state.cache.remember(&state.cache.held, key, held(state, repo_id, oid)).await
}

/// Where the content a commit or push names into a repo comes from: the repo holds it, a shard
/// registered it there through Xet (the `lfsFile` of an upload), or the writer can read another
/// repo that holds it (a copy). None when none of these: the caller must upload the bytes.
#[tracing::instrument(skip_all, fields(repo = %repo_id, oid = %oid))]
pub async fn resolve_for_write(state: &AppState, caller: &Caller, repo_id: &str, oid: &str) -> ApiResult<Option<HeldObject>> {
    if let Some(obj) = held(state, repo_id, oid).await? {
        return Ok(Some(obj));
    }
    if let Some((file_hash, size)) = state.db.registered_xet_file(repo_id, oid).await? {
        return Ok(Some(HeldObject { oid: oid.to_string(), size, xet_hash: Some(file_hash) }));
    }
    for (obj, verified) in state.db.readable_holders(oid, &caller.visible_namespaces()).await? {
        if verified {
            return Ok(Some(obj));
        }
        // Another repo's uploader declared this SHA-256 for a Xet file; before it crosses into a
        // repo they do not control, the hub hashes the bytes itself.
        let Some(file_hash) = &obj.xet_hash else { continue };
        let Some(file) = state.db.xet_file(file_hash).await? else { continue };
        if crate::xet::sha256_of(state, &file).await? == oid {
            state.db.set_xet_file_sha256(file_hash, oid).await?;
            return Ok(Some(obj));
        }
    }
    Ok(None)
}

/// Records that a repo holds content (or that it was just used).
pub async fn record(state: &AppState, repo_id: &str, obj: &HeldObject) -> ApiResult<()> {
    match state.db.record_object(repo_id, obj).await {
        Ok(()) => Ok(()),
        // The repo was deleted meanwhile.
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(ApiError::repo_not_found(true)),
        Err(e) => Err(e.into()),
    }
}

/// Bytes `[first, last]` (or all) of held content.
#[tracing::instrument(skip_all, fields(oid = %obj.oid, xet = obj.xet_hash.is_some()))]
pub async fn read(state: &AppState, obj: &HeldObject, range: Option<(u64, u64)>) -> ApiResult<ByteStream> {
    match &obj.xet_hash {
        None => Ok(state.storage.read(&obj.oid, range.map(|(a, b)| a..b + 1)).await?),
        Some(file_hash) => {
            let file = state
                .db
                .xet_file(file_hash)
                .await?
                .ok_or_else(|| ApiError::internal(format!("Xet file {file_hash} of object {} is not registered", obj.oid)))?;
            let (first, last) = range.unwrap_or((0, file.size.saturating_sub(1)));
            if file.size == 0 {
                return Ok(Box::pin(futures::stream::empty()));
            }
            crate::xet::stream_range(state, &file, first, last).await
        }
    }
}

/// Reads a small byte range of held content fully (safetensors headers).
pub async fn read_small(state: &AppState, obj: &HeldObject, first: u64, len: u64) -> ApiResult<Option<bytes::Bytes>> {
    use futures::StreamExt;
    if len == 0 || first.saturating_add(len) > obj.size {
        return Ok(None);
    }
    let mut stream = read(state, obj, Some((first, first + len - 1))).await?;
    let mut out = bytes::BytesMut::with_capacity(len as usize);
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok((out.len() as u64 == len).then(|| out.freeze()))
}

/// The bytes a repo's content occupies, deduplicated: each LFS object once, each xorb its
/// files use once.
#[tracing::instrument(skip_all, fields(repo = %repo_id))]
pub async fn used_storage(state: &AppState, repo_id: &str) -> ApiResult<u64> {
    state.cache.remember(&state.cache.used_storage, repo_id.to_string(), count_used_storage(state, repo_id)).await
}

async fn count_used_storage(state: &AppState, repo_id: &str) -> ApiResult<u64> {
    let mut total = 0u64;
    let mut xorbs = std::collections::HashSet::new();
    let mut files = std::collections::HashSet::new();
    for obj in state.db.all_held_objects(repo_id).await? {
        match obj.xet_hash {
            None => total += obj.size,
            Some(f) => {
                files.insert(f);
            }
        }
    }
    for f in files {
        let Some(row) = state.db.xet_file(&f).await? else { continue };
        for term in crate::xet::layout::decode_terms(&row.terms).unwrap_or_default() {
            xorbs.insert(term.xorb.hex());
        }
    }
    for x in xorbs {
        if let Some(row) = state.db.xorb(&x).await? {
            total += row.stored_len;
        }
    }
    Ok(total)
}
