//! Xet metadata: xorbs and their chunks, files and their terms, which repo registered which file,
//! shards and the global dedup index. Chunk and term lists are opaque blobs here; `xet::layout`
//! encodes and decodes them.

use super::{now_ms, Db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct XorbRow {
    pub hash: String,
    #[sqlx(try_from = "i64")]
    pub stored_len: u64,
    #[sqlx(try_from = "i64")]
    pub unpacked_len: u64,
    #[sqlx(try_from = "i64")]
    pub num_chunks: u64,
    pub chunks: Vec<u8>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct XetFileRow {
    pub file_hash: String,
    #[sqlx(try_from = "i64")]
    pub size: u64,
    pub terms: Vec<u8>,
    /// The SHA-256 the hub computed over the reassembled bytes, once it has.
    pub sha256: Option<String>,
}

impl Db {
    /// Records a stored xorb; false when it was known already.
    pub async fn insert_xorb(&self, x: &XorbRow) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO xet_xorbs (hash, stored_len, unpacked_len, num_chunks, chunks, created_at, referenced_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&x.hash)
        .bind(x.stored_len as i64)
        .bind(x.unpacked_len as i64)
        .bind(x.num_chunks as i64)
        .bind(x.chunks.clone())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn xorb(&self, hash: &str) -> Result<Option<XorbRow>, sqlx::Error> {
        sqlx::query_as("SELECT hash, stored_len, unpacked_len, num_chunks, chunks FROM xet_xorbs WHERE hash = $1")
            .bind(hash)
            .fetch_optional(self.pool())
            .await
    }

    /// Marks xorbs as used now: a client's shard cache may reference them for three weeks.
    pub async fn touch_xorbs(&self, hashes: &[String]) -> Result<(), sqlx::Error> {
        let now = now_ms();
        for h in hashes {
            sqlx::query("UPDATE xet_xorbs SET referenced_at = $1 WHERE hash = $2").bind(now).bind(h).execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Records a file's reconstruction (the first verified one wins; any is as good).
    pub async fn insert_xet_file(&self, file_hash: &str, size: u64, terms: &[u8]) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO xet_files (file_hash, size, terms, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (file_hash) DO NOTHING",
        )
        .bind(file_hash)
        .bind(size as i64)
        .bind(terms.to_vec())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn xet_file(&self, file_hash: &str) -> Result<Option<XetFileRow>, sqlx::Error> {
        sqlx::query_as("SELECT file_hash, size, terms, sha256 FROM xet_files WHERE file_hash = $1")
            .bind(file_hash)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn set_xet_file_sha256(&self, file_hash: &str, sha256: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE xet_files SET sha256 = $1 WHERE file_hash = $2").bind(sha256).bind(file_hash).execute(self.pool()).await?;
        Ok(())
    }

    /// Records that a shard uploaded with a write token of `repo_id` registered a file, and the
    /// SHA-256 its uploader declared.
    pub async fn register_xet_file(&self, repo_id: &str, file_hash: &str, sha256: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO xet_file_repos (repo_id, file_hash, sha256, registered_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repo_id, file_hash) DO UPDATE SET sha256 = excluded.sha256, registered_at = excluded.registered_at",
        )
        .bind(repo_id)
        .bind(file_hash)
        .bind(sha256)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The file most recently registered for a repo under a declared SHA-256, and its size.
    pub async fn registered_xet_file(&self, repo_id: &str, sha256: &str) -> Result<Option<(String, u64)>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT r.file_hash, f.size FROM xet_file_repos r JOIN xet_files f ON f.file_hash = r.file_hash \
             WHERE r.repo_id = $1 AND r.sha256 = $2 ORDER BY r.registered_at DESC LIMIT 1",
        )
        .bind(repo_id)
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(hash, size)| (hash, size.max(0) as u64)))
    }

    /// Whether a repo may read a Xet file: it registered it, or holds content backed by it.
    pub async fn repo_sees_xet_file(&self, repo_id: &str, file_hash: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM xet_file_repos WHERE repo_id = $1 AND file_hash = $2 \
             UNION ALL SELECT 1 AS one FROM repo_objects WHERE repo_id = $1 AND xet_hash = $2",
        )
        .bind(repo_id)
        .bind(file_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// Records a registered shard, the xorbs it describes, and its global-dedup chunks (a later
    /// shard takes a chunk over: it is the likelier to stay).
    pub async fn insert_shard(&self, id: &str, xorbs: &[String], dedup_chunks: &[String]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO xet_shards (id, created_at) VALUES ($1, $2)").bind(id).bind(now_ms()).execute(&mut *tx).await?;
        for x in xorbs {
            sqlx::query("INSERT INTO xet_shard_xorbs (shard_id, xorb_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(x)
                .execute(&mut *tx)
                .await?;
        }
        for c in dedup_chunks {
            sqlx::query(
                "INSERT INTO xet_dedup (chunk_hash, shard_id) VALUES ($1, $2) \
                 ON CONFLICT (chunk_hash) DO UPDATE SET shard_id = excluded.shard_id",
            )
            .bind(c)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// The shard to answer a global dedup query for a chunk with.
    pub async fn dedup_shard(&self, chunk_hash: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT shard_id FROM xet_dedup WHERE chunk_hash = $1").bind(chunk_hash).fetch_optional(self.pool()).await
    }
}

impl Db {
    /// Marks the xorbs a shard describes as used now (a dedup answer handed them out).
    pub async fn touch_shard_xorbs(&self, shard_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE xet_xorbs SET referenced_at = $1 WHERE hash IN (SELECT xorb_hash FROM xet_shard_xorbs WHERE shard_id = $2)")
            .bind(now_ms())
            .bind(shard_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
