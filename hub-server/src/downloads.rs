//! Download counts, gathered in memory and written every few seconds off the request path (a
//! small file's GET used to wait on a database write).

use crate::db::Db;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Default)]
pub struct DownloadCounts {
    pending: Arc<Mutex<HashMap<String, i64>>>,
}

impl DownloadCounts {
    /// Counts one download of a repo (written on the next flush).
    pub fn count(&self, repo_id: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(repo_id) {
            Some(n) => *n += 1,
            None => {
                pending.insert(repo_id.to_string(), 1);
            }
        }
    }

    /// Writes what was counted since the last flush.
    pub async fn flush(&self, db: &Db) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for (repo_id, n) in pending {
            if let Err(e) = db.count_downloads(&repo_id, n).await {
                tracing::warn!(error = %e, "could not record downloads");
            }
        }
    }

    /// Flushes every few seconds, for as long as the process runs.
    pub fn start(&self, db: Db) {
        let counts = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                counts.flush(&db).await;
            }
        });
    }
}
