//! Global dedup: a chunk hash some client holds → the xorbs of the shard that registered it, as a
//! shard whose chunk hashes are HMAC-keyed with a fresh key. A client can only match chunks it
//! has; raw chunk hashes, which prove possession in verification entries, never leave the hub.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::storage::XetKey;
use bytes::Bytes;
use std::io::Cursor;
use std::time::Duration;
use xet_core_structures::merklehash::{HMACKey, MerkleHash};
use xet_core_structures::metadata_shard::MDBShardInfo;

/// How long a client may use the keyed hashes it was given (the xorbs outlive this: garbage
/// collection keeps anything referenced within three weeks).
const KEY_VALID_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// The keyed shard answering a dedup query for `chunk`, or None when no shard holds it.
pub async fn dedup_shard(state: &AppState, chunk: &MerkleHash) -> ApiResult<Option<Bytes>> {
    let Some(shard_id) = state.db.dedup_shard(&chunk.hex()).await? else { return Ok(None) };
    let stored = match state.storage.get_xet(&XetKey::Shard(shard_id.clone())).await {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // A client that dedups against these xorbs may reference them for weeks without asking.
    state.db.touch_shard_xorbs(&shard_id).await?;
    let key: HMACKey = MerkleHash::from_slice(&rand::random::<[u8; 32]>()).map_err(ApiError::internal)?;
    let keyed = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(stored.len() + 256);
        MDBShardInfo::export_as_keyed_shard_streaming(&mut Cursor::new(&stored[..]), &mut out, key, KEY_VALID_FOR, false, false, false)
            .map(|_| out)
    })
    .await?
    .map_err(|e| ApiError::internal(format!("could not key shard {shard_id}: {e}")))?;
    Ok(Some(Bytes::from(keyed)))
}
