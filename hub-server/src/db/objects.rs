//! Which repo may see which content (`repo_objects`), the stored LFS objects, and one-time jobs.

use super::{now_ms, Db, SqlBuilder};

/// Content a repo holds: its SHA-256, size, and where the bytes are.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HeldObject {
    pub oid: String,
    #[sqlx(try_from = "i64")]
    pub size: u64,
    /// The Xet file holding the bytes; None = the LFS object of that oid.
    pub xet_hash: Option<String>,
}

/// A holder of an object, and the SHA-256 the hub computed over its Xet file's bytes, if any.
#[derive(sqlx::FromRow)]
struct HolderRecord {
    #[sqlx(flatten)]
    object: HeldObject,
    sha256: Option<String>,
}

/// At most this many values in one `IN (…)` list.
const IN_BATCH: usize = 500;

impl Db {
    pub async fn held_object(&self, repo_id: &str, oid: &str) -> Result<Option<HeldObject>, sqlx::Error> {
        sqlx::query_as("SELECT oid, size, xet_hash FROM repo_objects WHERE repo_id = $1 AND oid = $2")
            .bind(repo_id)
            .bind(oid)
            .fetch_optional(self.pool())
            .await
    }

    /// The objects among `oids` that a repo holds.
    pub async fn held_objects(&self, repo_id: &str, oids: &[String]) -> Result<Vec<HeldObject>, sqlx::Error> {
        let mut out = Vec::new();
        for batch in oids.chunks(IN_BATCH) {
            let mut b = SqlBuilder::new("SELECT oid, size, xet_hash FROM repo_objects WHERE repo_id = ");
            b.push_bind(repo_id).push(" AND oid IN (").push_list(batch.iter().map(String::as_str)).push(")");
            out.extend(b.fetch_all::<HeldObject>(self.pool()).await?);
        }
        Ok(out)
    }

    /// Every object a repo holds.
    pub async fn all_held_objects(&self, repo_id: &str) -> Result<Vec<HeldObject>, sqlx::Error> {
        sqlx::query_as("SELECT oid, size, xet_hash FROM repo_objects WHERE repo_id = $1").bind(repo_id).fetch_all(self.pool()).await
    }

    /// Records that a repo holds an object (or refreshes when it was last used). An object held
    /// as an LFS object stays one: those bytes were hashed by the hub itself.
    pub async fn record_object(&self, repo_id: &str, object: &HeldObject) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO repo_objects (repo_id, oid, size, xet_hash, touched_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (repo_id, oid) DO UPDATE SET touched_at = excluded.touched_at, size = excluded.size, \
             xet_hash = CASE WHEN repo_objects.xet_hash IS NULL THEN NULL ELSE excluded.xet_hash END",
        )
        .bind(repo_id)
        .bind(&object.oid)
        .bind(object.size as i64)
        .bind(object.xet_hash.as_deref())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Repos that hold `oid`, public ones or in one of `namespaces`, with how they hold it, and
    /// whether a Xet-backed copy's bytes were hashed by the hub to `oid`.
    pub async fn readable_holders(&self, oid: &str, namespaces: &[String]) -> Result<Vec<(HeldObject, bool)>, sqlx::Error> {
        let mut b = SqlBuilder::new(
            "SELECT o.oid, o.size, o.xet_hash, f.sha256 FROM repo_objects o JOIN repos r ON r.id = o.repo_id \
             LEFT JOIN xet_files f ON f.file_hash = o.xet_hash WHERE o.oid = ",
        );
        b.push_bind(oid).push(" AND (r.private = 0");
        if !namespaces.is_empty() {
            b.push(" OR r.namespace IN (").push_list(namespaces.iter().map(String::as_str)).push(")");
        }
        b.push(") ORDER BY CASE WHEN o.xet_hash IS NULL THEN 0 ELSE 1 END LIMIT 20");
        let rows: Vec<HolderRecord> = b.fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                // Bytes the hub hashed itself: an LFS object, or a Xet file it reassembled to `oid`.
                let verified = r.object.xet_hash.is_none() || r.sha256.as_deref() == Some(oid);
                (r.object, verified)
            })
            .collect())
    }

    /// Records a stored LFS object (for garbage collection's age check).
    pub async fn record_lfs_object(&self, oid: &str, size: u64) -> Result<(), sqlx::Error> {
        self.record_lfs_object_at(oid, size, now_ms()).await
    }

    pub async fn record_lfs_object_at(&self, oid: &str, size: u64, created_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO lfs_objects (oid, size, created_at) VALUES ($1, $2, $3) ON CONFLICT (oid) DO NOTHING")
            .bind(oid)
            .bind(size as i64)
            .bind(created_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT value FROM hub_meta WHERE key = $1").bind(key).fetch_optional(self.pool()).await
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO hub_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// What storage holds, for monitoring: LFS objects and Xet xorbs, counts and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredTotals {
    pub lfs_objects: i64,
    pub lfs_bytes: i64,
    pub xet_xorbs: i64,
    pub xet_bytes: i64,
}

impl Db {
    pub async fn stored_totals(&self) -> Result<StoredTotals, sqlx::Error> {
        let (lfs_objects, lfs_bytes): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM lfs_objects").fetch_one(self.pool()).await?;
        let (xet_xorbs, xet_bytes): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(stored_len), 0) AS BIGINT) FROM xet_xorbs").fetch_one(self.pool()).await?;
        Ok(StoredTotals { lfs_objects, lfs_bytes, xet_xorbs, xet_bytes })
    }
}
