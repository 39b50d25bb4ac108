//! Parameter counts of safetensors files, read from the header only (two ranged reads).

use crate::storage::Storage;
use std::collections::BTreeMap;

/// Headers beyond this are not read (the format caps them at 100 MB).
const MAX_HEADER: u64 = 100 * 1024 * 1024;

/// The JSON header of a safetensors object, read by range (never the tensor data).
async fn read_header(storage: &Storage, oid: &str, size: u64) -> Option<bytes::Bytes> {
    if size < 8 {
        return None;
    }
    let len = storage.read_range(oid, 0..8).await.ok()?;
    let n = u64::from_le_bytes(len.as_ref().try_into().ok()?);
    if n == 0 || n > MAX_HEADER || 8 + n > size {
        return None;
    }
    storage.read_range(oid, 8..8 + n).await.ok()
}

/// What a safetensors file holds: parameters per dtype (`{"F32": n}`) and its tensor count.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub parameters: BTreeMap<String, u64>,
    pub tensors: u64,
}

/// Reads a summary from the object's header, or None when it is not a readable safetensors file.
async fn read_summary(storage: &Storage, oid: &str, size: u64) -> Option<Summary> {
    let header = read_header(storage, oid, size).await?;
    let tensors =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&header).ok()?.keys().filter(|k| *k != "__metadata__").count();
    Some(Summary { parameters: count_parameters(&header)?, tensors: tensors as u64 })
}

/// The summary of an LFS object, read from storage once and then kept in the database (LFS
/// objects never change), so repo pages and repo info do not re-read headers per request.
pub async fn summary(db: &crate::db::Db, storage: &Storage, oid: &str, size: u64) -> Result<Option<Summary>, sqlx::Error> {
    if let Some(cached) = db.safetensors_summary(oid).await? {
        return Ok(serde_json::from_str(&cached).ok());
    }
    let summary = read_summary(storage, oid, size).await;
    if let Some(s) = &summary {
        db.store_safetensors_summary(oid, &serde_json::to_string(s).unwrap_or_default()).await?;
    }
    Ok(summary)
}

pub fn count_parameters(header: &[u8]) -> Option<BTreeMap<String, u64>> {
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut counts = BTreeMap::new();
    for (name, tensor) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = tensor.get("dtype")?.as_str()?.to_string();
        let shape = tensor.get("shape")?.as_array()?;
        let mut n: u64 = 1;
        for d in shape {
            n = n.checked_mul(d.as_u64()?)?;
        }
        *counts.entry(dtype).or_insert(0) += n;
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_by_dtype() {
        let header = br#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[768,4096],"data_offsets":[0,1]},"b":{"dtype":"F16","shape":[2,3],"data_offsets":[1,2]},"c":{"dtype":"F32","shape":[],"data_offsets":[2,3]}}"#;
        let counts = super::count_parameters(header).unwrap();
        assert_eq!(counts["F32"], 768 * 4096 + 1);
        assert_eq!(counts["F16"], 6);
        assert!(super::count_parameters(b"not json").is_none());
    }
}
