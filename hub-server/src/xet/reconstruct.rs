//! Reconstructions (`GET /v{1,2}/reconstructions/{file}`): which chunk ranges of which xorbs
//! make up a byte range of a file, and the stored bytes to fetch for them.

use super::layout::{decode_terms, overlapping, plan_range, RangePlan, Term, XorbLayout};
use crate::app::AppState;
use crate::db::XetFileRow;
use crate::error::{ApiError, ApiResult};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use xet_core_structures::merklehash::MerkleHash;

/// Stored bytes `[bytes.0, bytes.1]` (inclusive) of a xorb hold its chunks `[chunks.0, chunks.1)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub xorb: MerkleHash,
    pub chunks: (u32, u32),
    pub bytes: (u64, u64),
}

#[derive(Debug, Clone)]
pub struct Reconstruction {
    pub offset: u64,
    pub terms: Vec<Term>,
    pub fetches: Vec<Fetch>,
}

pub(super) type Layouts = HashMap<MerkleHash, Arc<XorbLayout>>;

/// The plan for bytes `[first, last]` of a file, with the chunk tables of the xorbs it uses
/// (only those: a huge file never loads all of its tables at once).
pub(super) async fn plan_with_layouts(state: &AppState, file: &XetFileRow, first: u64, last: u64) -> ApiResult<(RangePlan, Layouts)> {
    let corrupt = || ApiError::internal(format!("the stored terms of Xet file {} are corrupt", file.file_hash));
    let terms = decode_terms(&file.terms).ok_or_else(corrupt)?;
    let needed: HashSet<MerkleHash> = overlapping(&terms, first, last).map(|t| t.xorb).collect();
    let mut layouts = Layouts::new();
    for hash in needed {
        let layout = super::layout(state, &hash)
            .await?
            .ok_or_else(|| ApiError::internal(format!("xorb {} of Xet file {} is missing", hash.hex(), file.file_hash)))?;
        layouts.insert(hash, layout);
    }
    let plan = plan_range(&terms, first, last, |h| layouts.get(h).map(|l| l.as_ref())).ok_or_else(corrupt)?;
    Ok((plan, layouts))
}

/// Bytes `[first, last]` of a file: its terms, and one fetch per run of chunks needed from each
/// xorb (overlapping or adjacent runs merged, so every term lies inside one fetch).
pub async fn plan_fetches(state: &AppState, file: &XetFileRow, first: u64, last: u64) -> ApiResult<Reconstruction> {
    let (plan, layouts) = plan_with_layouts(state, file, first, last).await?;
    let mut runs: BTreeMap<MerkleHash, Vec<(u32, u32)>> = BTreeMap::new();
    for t in &plan.terms {
        runs.entry(t.xorb).or_default().push((t.start, t.end));
    }
    let mut fetches = Vec::new();
    for (xorb, mut ranges) in runs {
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let layout = &layouts[&xorb];
        for (s, e) in merged {
            let (b0, b1) = layout.byte_range(s, e).ok_or_else(|| ApiError::internal("a term lies outside its xorb"))?;
            fetches.push(Fetch { xorb, chunks: (s, e), bytes: (b0, b1 - 1) });
        }
    }
    Ok(Reconstruction { offset: plan.offset, terms: plan.terms, fetches })
}
