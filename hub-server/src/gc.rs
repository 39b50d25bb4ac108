//! Garbage collection: deletes stored bytes nothing reachable references any more — LFS objects,
//! xorbs and shards — once they are older than the grace period (at least 21 days: Xet clients
//! reuse chunks they uploaded for three weeks without asking, and a push or commit may still be
//! on its way). Database rows go first, each delete re-checked in SQL, then the objects.

use crate::app::AppState;
use crate::content::HeldObject;
use crate::error::ApiResult;
use crate::storage::XetKey;
use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct GcReport {
    /// Repo holds on content no ref reaches (uploaded, never committed; squashed away).
    pub released: Vec<(String, String)>,
    pub lfs_objects: Vec<(String, u64)>,
    pub xet_files: Vec<String>,
    pub xorbs: Vec<(String, u64)>,
    pub shards: Vec<String>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.lfs_objects.iter().map(|(_, s)| s).sum::<u64>() + self.xorbs.iter().map(|(_, s)| s).sum::<u64>()
    }
}

/// Runs one collection; with `dry_run`, only reports what it would delete.
#[tracing::instrument(skip_all, fields(dry_run))]
pub async fn collect(state: &AppState, dry_run: bool) -> ApiResult<GcReport> {
    let cutoff = crate::db::now_ms() - state.settings.gc_grace_days as i64 * 24 * 3600 * 1000;
    let mut report = GcReport::default();

    // What every repo's history references.
    let mut reachable: HashSet<(String, String)> = HashSet::new();
    for (repo_id, _) in state.db.repo_heads().await? {
        let id = repo_id.clone();
        match state.with_git(&repo_id, |g| Ok(crate::git::reachable_pointers(g)?)).await {
            Ok(pointers) => reachable.extend(pointers.into_iter().map(|p| (id.clone(), p.oid))),
            Err(e) => {
                // Unreadable history: keep everything rather than guess.
                tracing::warn!(repo = %repo_id, error = %e, "garbage collection skipped: cannot read a repo's history");
                return Ok(report);
            }
        }
    }
    let rows = state.db.object_rows().await?;
    let mut live_lfs = HashSet::new();
    for row in rows {
        let referenced = reachable.contains(&(row.repo_id.clone(), row.oid.clone()));
        if !referenced && row.touched_at < cutoff && (dry_run || state.db.drop_stale_object(&row.repo_id, &row.oid, cutoff).await?) {
            report.released.push((row.repo_id, row.oid));
        } else if row.xet_hash.is_none() {
            live_lfs.insert(row.oid);
        }
    }

    // LFS objects: ones stored before they were recorded (older hubs) are adopted first.
    let recorded: HashSet<String> = state.db.lfs_object_rows().await?.into_iter().map(|r| r.key).collect();
    for listed in state.storage.list_lfs().await? {
        if !recorded.contains(&listed.name) {
            state.db.record_lfs_object_at(&listed.name, listed.size, listed.last_modified_ms).await?;
        }
    }
    for row in state.db.lfs_object_rows().await? {
        if live_lfs.contains(&row.key) || row.created_at >= cutoff {
            continue;
        }
        if dry_run || state.db.drop_unheld_lfs_object(&row.key, cutoff).await? {
            if !dry_run {
                state.storage.delete_lfs(&row.key).await?;
            }
            report.lfs_objects.push((row.key, row.size));
        }
    }

    // Xet: registrations never committed, then files nothing registers or holds.
    if !dry_run {
        state.db.drop_stale_registrations(cutoff).await?;
    }
    for file in state.db.unused_xet_files(cutoff).await? {
        if dry_run || state.db.drop_unused_xet_file(&file, cutoff).await? {
            report.xet_files.push(file);
        }
    }
    let dropped: HashSet<&String> = report.xet_files.iter().collect();
    let mut used_xorbs = HashSet::new();
    for (file, terms) in state.db.xet_file_terms().await? {
        if dropped.contains(&file) {
            continue; // (a dry run still has its row)
        }
        for t in crate::xet::layout::decode_terms(&terms).unwrap_or_default() {
            used_xorbs.insert(t.xorb.hex());
        }
    }
    let dead: Vec<(String, u64)> = state
        .db
        .xorb_rows()
        .await?
        .into_iter()
        .filter(|x| !used_xorbs.contains(&x.key) && x.created_at < cutoff && x.used_at < cutoff)
        .map(|x| (x.key, x.size))
        .collect();
    // Shards that describe a dying xorb stop answering dedup first, so no client is told to
    // reference a xorb that is about to go.
    let dead_names: Vec<String> = dead.iter().map(|(h, _)| h.clone()).collect();
    for shard in state.db.shards_of_xorbs(&dead_names).await? {
        if !dry_run {
            state.db.drop_shard(&shard).await?;
            state.storage.delete_xet(&XetKey::Shard(shard.clone())).await?;
        }
        report.shards.push(shard);
    }
    for (hash, size) in dead {
        if dry_run || state.db.drop_stale_xorb(&hash, cutoff).await? {
            if !dry_run {
                state.storage.delete_xet(&XetKey::Xorb(hash.clone())).await?;
            }
            report.xorbs.push((hash, size));
        }
    }
    Ok(report)
}

/// Records, once, which content each existing repo holds: every LFS pointer its history reaches
/// whose object is stored. Hubs from before repos held their own objects keep serving them.
pub async fn backfill_repo_objects(state: &AppState) -> ApiResult<usize> {
    const DONE: &str = "repo_objects_backfilled";
    if state.db.meta(DONE).await?.is_some() {
        return Ok(0);
    }
    let mut recorded = 0;
    for (repo_id, _) in state.db.repo_heads().await? {
        let pointers = match state.with_git(&repo_id, |g| Ok(crate::git::reachable_pointers(g)?)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(repo = %repo_id, error = %e, "cannot read a repo's history; its LFS files stay unlinked");
                continue;
            }
        };
        for p in pointers {
            if state.storage.object_size(&p.oid).await? == Some(p.size) {
                state.db.record_lfs_object(&p.oid, p.size).await?;
                crate::content::record(state, &repo_id, &HeldObject { oid: p.oid, size: p.size, xet_hash: None }).await?;
                recorded += 1;
            }
        }
    }
    state.db.set_meta(DONE, "1").await?;
    Ok(recorded)
}
