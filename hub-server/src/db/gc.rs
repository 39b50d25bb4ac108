//! Queries of garbage collection. Every delete re-checks its condition in SQL, so whatever a
//! concurrent upload or commit touched since the collector looked survives.

use super::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ObjectRow {
    pub repo_id: String,
    pub oid: String,
    pub xet_hash: Option<String>,
    pub touched_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgedRow {
    /// An oid, hash or id.
    pub key: String,
    #[sqlx(try_from = "i64")]
    pub size: u64,
    pub created_at: i64,
    /// When it was last used (xorbs: referenced by a shard or handed out by dedup).
    pub used_at: i64,
}

impl Db {
    pub async fn object_rows(&self) -> Result<Vec<ObjectRow>, sqlx::Error> {
        sqlx::query_as("SELECT repo_id, oid, xet_hash, touched_at FROM repo_objects").fetch_all(self.pool()).await
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
        sqlx::query_as("SELECT oid AS key, size, created_at, created_at AS used_at FROM lfs_objects").fetch_all(self.pool()).await
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
        sqlx::query_scalar(
            "SELECT file_hash FROM xet_files f WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM xet_file_repos r WHERE r.file_hash = f.file_hash) \
             AND NOT EXISTS (SELECT 1 FROM repo_objects o WHERE o.xet_hash = f.file_hash)",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await
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
        sqlx::query_as("SELECT file_hash, terms FROM xet_files").fetch_all(self.pool()).await
    }

    pub async fn xorb_rows(&self) -> Result<Vec<AgedRow>, sqlx::Error> {
        sqlx::query_as("SELECT hash AS key, stored_len AS size, created_at, referenced_at AS used_at FROM xet_xorbs")
            .fetch_all(self.pool())
            .await
    }

    /// The shards that describe any of these xorbs.
    pub async fn shards_of_xorbs(&self, xorbs: &[String]) -> Result<Vec<String>, sqlx::Error> {
        let mut out = std::collections::BTreeSet::new();
        for x in xorbs {
            let shards: Vec<String> =
                sqlx::query_scalar("SELECT shard_id FROM xet_shard_xorbs WHERE xorb_hash = $1").bind(x).fetch_all(self.pool()).await?;
            out.extend(shards);
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
