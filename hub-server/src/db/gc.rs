//! Queries of garbage collection. Every delete re-checks its condition in SQL, so whatever a
//! concurrent upload or commit touched since the collector looked survives.

use super::{get, Db};

#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub repo_id: String,
    pub oid: String,
    pub xet_hash: Option<String>,
    pub touched_at: i64,
}

#[derive(Debug, Clone)]
pub struct AgedRow {
    /// An oid, hash or id.
    pub key: String,
    pub size: u64,
    pub created_at: i64,
    /// When it was last used (xorbs: referenced by a shard or handed out by dedup).
    pub used_at: i64,
}

impl Db {
    pub async fn object_rows(&self) -> Result<Vec<ObjectRow>, sqlx::Error> {
        let rows = sqlx::query("SELECT repo_id, oid, xet_hash, touched_at FROM repo_objects").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(ObjectRow {
                    repo_id: get(r, "repo_id")?,
                    oid: get(r, "oid")?,
                    xet_hash: get(r, "xet_hash")?,
                    touched_at: get(r, "touched_at")?,
                })
            })
            .collect()
    }

    /// Drops a repo's hold on content nothing references, unless it was used since `cutoff`.
    pub async fn drop_stale_object(&self, repo_id: &str, oid: &str, cutoff: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM repo_objects WHERE repo_id = $1 AND oid = $2 AND touched_at < $3")
            .bind(repo_id)
            .bind(oid)
            .bind(cutoff)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn lfs_object_rows(&self) -> Result<Vec<AgedRow>, sqlx::Error> {
        let rows = sqlx::query("SELECT oid, size, created_at FROM lfs_objects").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let created_at = get(r, "created_at")?;
                Ok(AgedRow { key: get(r, "oid")?, size: get::<i64>(r, "size")? as u64, created_at, used_at: created_at })
            })
            .collect()
    }

    /// Forgets a stored LFS object that no repo holds and that is older than `cutoff`.
    pub async fn drop_unheld_lfs_object(&self, oid: &str, cutoff: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM lfs_objects WHERE oid = $1 AND created_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM repo_objects WHERE oid = $1 AND xet_hash IS NULL)",
        )
        .bind(oid)
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets Xet registrations older than `cutoff` whose repo never committed the file.
    pub async fn drop_stale_registrations(&self, cutoff: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM xet_file_repos WHERE registered_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM repo_objects o WHERE o.repo_id = xet_file_repos.repo_id AND o.xet_hash = xet_file_repos.file_hash)",
        )
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Xet files nothing registers or holds any more, older than `cutoff`.
    pub async fn unused_xet_files(&self, cutoff: i64) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT file_hash FROM xet_files f WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM xet_file_repos r WHERE r.file_hash = f.file_hash) \
             AND NOT EXISTS (SELECT 1 FROM repo_objects o WHERE o.xet_hash = f.file_hash)",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| get(r, "file_hash")).collect()
    }

    pub async fn drop_unused_xet_file(&self, file_hash: &str, cutoff: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM xet_files WHERE file_hash = $1 AND created_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM xet_file_repos r WHERE r.file_hash = $1) \
             AND NOT EXISTS (SELECT 1 FROM repo_objects o WHERE o.xet_hash = $1)",
        )
        .bind(file_hash)
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every Xet file's term list (to find the xorbs still in use).
    pub async fn xet_file_terms(&self) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
        let rows = sqlx::query("SELECT file_hash, terms FROM xet_files").fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((get(r, "file_hash")?, get(r, "terms")?))).collect()
    }

    pub async fn xorb_rows(&self) -> Result<Vec<AgedRow>, sqlx::Error> {
        let rows = sqlx::query("SELECT hash, stored_len, created_at, referenced_at FROM xet_xorbs").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(AgedRow {
                    key: get(r, "hash")?,
                    size: get::<i64>(r, "stored_len")? as u64,
                    created_at: get(r, "created_at")?,
                    used_at: get(r, "referenced_at")?,
                })
            })
            .collect()
    }

    /// The shards that describe any of these xorbs.
    pub async fn shards_of_xorbs(&self, xorbs: &[String]) -> Result<Vec<String>, sqlx::Error> {
        let mut out = std::collections::BTreeSet::new();
        for x in xorbs {
            for r in sqlx::query("SELECT shard_id FROM xet_shard_xorbs WHERE xorb_hash = $1").bind(x).fetch_all(self.pool()).await? {
                out.insert(get::<String>(&r, "shard_id")?);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Forgets a shard: it no longer answers dedup queries.
    pub async fn drop_shard(&self, id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        for table in ["xet_dedup", "xet_shard_xorbs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE shard_id = $1")).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM xet_shards WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Forgets a xorb unless it was created or used since `cutoff`.
    pub async fn drop_stale_xorb(&self, hash: &str, cutoff: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM xet_xorbs WHERE hash = $1 AND created_at < $2 AND referenced_at < $2")
            .bind(hash)
            .bind(cutoff)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
