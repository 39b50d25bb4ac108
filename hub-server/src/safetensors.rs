//! Parameter counts of safetensors files, read from the header only (two ranged reads).

use crate::app::AppState;
use crate::content::{self, HeldObject};
use crate::error::ApiResult;
use std::collections::BTreeMap;

/// Headers beyond this are not read (the format caps them at 100 MB).
const MAX_HEADER: u64 = 100 * 1024 * 1024;

/// The JSON header of a safetensors file, read by range (never the tensor data).
async fn read_header(state: &AppState, obj: &HeldObject) -> ApiResult<Option<bytes::Bytes>> {
    let Some(len) = content::read_small(state, obj, 0, 8).await? else { return Ok(None) };
    let n = u64::from_le_bytes(len.as_ref().try_into().unwrap_or([0; 8]));
    if n == 0 || n > MAX_HEADER || 8 + n > obj.size {
        return Ok(None);
    }
    content::read_small(state, obj, 8, n).await
}

/// What a safetensors file holds: parameters per dtype (`{"F32": n}`) and its tensor count.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub parameters: BTreeMap<String, u64>,
    pub tensors: u64,
}

/// Reads a summary from the file's header, or None when it is not a readable safetensors file.
async fn read_summary(state: &AppState, obj: &HeldObject) -> ApiResult<Option<Summary>> {
    let Some(header) = read_header(state, obj).await? else { return Ok(None) };
    let Ok(map) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&header) else { return Ok(None) };
    let tensors = map.keys().filter(|k| *k != "__metadata__").count();
    Ok(count_parameters(&header).map(|parameters| Summary { parameters, tensors: tensors as u64 }))
}

/// The summary of held content, read once and then kept in the database by oid (content never
/// changes), so repo pages and repo info do not re-read headers per request. Only a repo that
/// holds the content gets here.
pub async fn summary(state: &AppState, obj: &HeldObject) -> ApiResult<Option<Summary>> {
    if let Some(cached) = state.db.safetensors_summary(&obj.oid).await? {
        return Ok(serde_json::from_str(&cached).ok());
    }
    let summary = match read_summary(state, obj).await {
        Ok(s) => s,
        Err(e) => {
            // Not cached: storage may answer next time.
            tracing::warn!(oid = %obj.oid, error = %e, "could not read a safetensors header");
            return Ok(None);
        }
    };
    // Not a readable safetensors file is cached too ("null"), so it is not re-read per request.
    let cached = summary.as_ref().map(|s| serde_json::to_string(s).unwrap_or_default()).unwrap_or_else(|| "null".into());
    state.db.store_safetensors_summary(&obj.oid, &cached).await?;
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
