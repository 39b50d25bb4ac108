//! Repository metadata: names, visibility, card metadata, counters, redirects.

use super::{now_ms, Db, SqlBuilder};
use crate::names::{RepoName, RepoType};

#[derive(Debug, Clone)]
pub struct RepoRow {
    /// Stable storage id: names the git repository on disk.
    pub id: String,
    pub name: RepoName,
    pub private: bool,
    pub created_at: i64,
    pub last_modified: i64,
    pub sha: Option<String>,
    pub card_data: Option<serde_json::Value>,
    pub tags: Vec<String>,
    pub pipeline_tag: Option<String>,
    pub library_name: Option<String>,
    pub downloads: i64,
    pub likes: i64,
}

/// Metadata derived from the default branch's README.md front matter.
#[derive(Debug, Clone, Default)]
pub struct CardMeta {
    pub card_data: Option<serde_json::Value>,
    pub tags: Vec<String>,
    pub pipeline_tag: Option<String>,
    pub library_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoSort {
    LastModified,
    CreatedAt,
    Downloads,
    Likes,
    Id,
}

#[derive(Debug, Clone)]
pub struct RepoQuery {
    pub repo_type: RepoType,
    pub search: Option<String>,
    pub author: Option<String>,
    pub tags: Vec<String>,
    pub pipeline_tag: Option<String>,
    pub sort: RepoSort,
    pub ascending: bool,
    /// Namespaces whose private repos the caller may see.
    pub visible_namespaces: Vec<String>,
    pub offset: i64,
    pub limit: i64,
}

const REPO_COLS: &str = "id, repo_type, namespace, name, private, created_at, last_modified, sha, card_data, tags, \
                         pipeline_tag, library_name, downloads, likes";

/// A `repos` row as stored: JSON columns as text, booleans as integers.
#[derive(sqlx::FromRow)]
struct RepoRecord {
    id: String,
    #[sqlx(try_from = "String")]
    repo_type: RepoType,
    namespace: String,
    name: String,
    private: i64,
    created_at: i64,
    last_modified: i64,
    sha: Option<String>,
    card_data: Option<String>,
    tags: String,
    pipeline_tag: Option<String>,
    library_name: Option<String>,
    downloads: i64,
    likes: i64,
}

impl From<RepoRecord> for RepoRow {
    fn from(r: RepoRecord) -> RepoRow {
        RepoRow {
            id: r.id,
            name: RepoName { repo_type: r.repo_type, namespace: r.namespace, name: r.name },
            private: r.private != 0,
            created_at: r.created_at,
            last_modified: r.last_modified,
            sha: r.sha,
            card_data: r.card_data.and_then(|c| serde_json::from_str(&c).ok()),
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            pipeline_tag: r.pipeline_tag,
            library_name: r.library_name,
            downloads: r.downloads,
            likes: r.likes,
        }
    }
}

/// Forgets that a name used to belong to a moved repo.
async fn drop_redirect(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &RepoName) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM repo_redirects WHERE repo_type = $1 AND namespace = $2 AND name = $3")
        .bind(name.repo_type.as_str())
        .bind(&name.namespace)
        .bind(&name.name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Db {
    pub async fn insert_repo(&self, id: &str, name: &RepoName, private: bool, sha: &str) -> Result<RepoRow, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // A new repo takes the name over from any moved repo that used to answer to it.
        drop_redirect(&mut tx, name).await?;
        let row: RepoRecord = sqlx::query_as(&format!(
            "INSERT INTO repos (id, repo_type, namespace, name, private, created_at, last_modified, sha) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {REPO_COLS}"
        ))
        .bind(id)
        .bind(name.repo_type.as_str())
        .bind(&name.namespace)
        .bind(&name.name)
        .bind(private as i64)
        .bind(now)
        .bind(now)
        .bind(sha)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub async fn find_repo(&self, name: &RepoName) -> Result<Option<RepoRow>, sqlx::Error> {
        let row: Option<RepoRecord> =
            sqlx::query_as(&format!("SELECT {REPO_COLS} FROM repos WHERE repo_type = $1 AND namespace = $2 AND name = $3"))
                .bind(name.repo_type.as_str())
                .bind(&name.namespace)
                .bind(&name.name)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(RepoRow::from))
    }

    pub async fn find_repo_by_id(&self, id: &str) -> Result<Option<RepoRow>, sqlx::Error> {
        let row: Option<RepoRecord> =
            sqlx::query_as(&format!("SELECT {REPO_COLS} FROM repos WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        Ok(row.map(RepoRow::from))
    }

    /// The repo an old (moved-away) name now points to.
    pub async fn find_redirect(&self, name: &RepoName) -> Result<Option<RepoRow>, sqlx::Error> {
        let row: Option<RepoRecord> = sqlx::query_as(&format!(
            "SELECT {} FROM repo_redirects d JOIN repos r ON r.id = d.repo_id \
             WHERE d.repo_type = $1 AND d.namespace = $2 AND d.name = $3",
            REPO_COLS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(name.repo_type.as_str())
        .bind(&name.namespace)
        .bind(&name.name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(RepoRow::from))
    }

    pub async fn delete_repo(&self, id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        for table in ["repo_tags", "repo_redirects", "likes", "repo_objects", "xet_file_repos"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE repo_id = $1")).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM repos WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Renames a repo and keeps its old name as a redirect.
    pub async fn move_repo(&self, current: &RepoRow, to: &RepoName) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        drop_redirect(&mut tx, to).await?;
        sqlx::query("UPDATE repos SET namespace = $1, name = $2, last_modified = $3 WHERE id = $4")
            .bind(&to.namespace)
            .bind(&to.name)
            .bind(now_ms())
            .bind(&current.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO repo_redirects (repo_type, namespace, name, repo_id) VALUES ($1, $2, $3, $4)")
            .bind(current.name.repo_type.as_str())
            .bind(&current.name.namespace)
            .bind(&current.name.name)
            .bind(&current.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    pub async fn set_private(&self, id: &str, private: bool) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE repos SET private = $1 WHERE id = $2").bind(private as i64).bind(id).execute(self.pool()).await?;
        Ok(())
    }

    /// Records a new head of the default branch, with the card metadata read from it.
    pub async fn record_head(&self, id: &str, sha: &str, card: &CardMeta) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let card_json = card.card_data.as_ref().map(|c| c.to_string());
        let tags_json = serde_json::to_string(&card.tags).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "UPDATE repos SET sha = $1, last_modified = $2, card_data = $3, tags = $4, pipeline_tag = $5, library_name = $6 \
             WHERE id = $7",
        )
        .bind(sha)
        .bind(now_ms())
        .bind(card_json)
        .bind(tags_json)
        .bind(card.pipeline_tag.as_deref())
        .bind(card.library_name.as_deref())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM repo_tags WHERE repo_id = $1").bind(id).execute(&mut *tx).await?;
        for tag in &card.tags {
            sqlx::query("INSERT INTO repo_tags (repo_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Marks a change that does not move the default branch (another branch, a tag).
    pub async fn touch_repo(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE repos SET last_modified = $1 WHERE id = $2").bind(now_ms()).bind(id).execute(self.pool()).await?;
        Ok(())
    }

    /// Likes or unlikes a repo for a user; returns whether it is now liked.
    pub async fn toggle_like(&self, user_id: i64, repo_id: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let removed =
            sqlx::query("DELETE FROM likes WHERE user_id = $1 AND repo_id = $2").bind(user_id).bind(repo_id).execute(&mut *tx).await?;
        let liked = removed.rows_affected() == 0;
        if liked {
            sqlx::query("INSERT INTO likes (user_id, repo_id, created_at) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(repo_id)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE repos SET likes = (SELECT COUNT(*) FROM likes WHERE repo_id = $1) WHERE id = $1")
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(liked)
    }

    pub async fn has_liked(&self, user_id: i64, repo_id: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query("SELECT 1 AS one FROM likes WHERE user_id = $1 AND repo_id = $2")
            .bind(user_id)
            .bind(repo_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Every repo's id and recorded head of its default branch.
    pub async fn repo_heads(&self) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
        sqlx::query_as("SELECT id, sha FROM repos").fetch_all(self.pool()).await
    }

    pub async fn count_downloads(&self, id: &str, n: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE repos SET downloads = downloads + $1 WHERE id = $2").bind(n).bind(id).execute(self.pool()).await?;
        Ok(())
    }

    /// One page of repos matching the query, and whether more follow.
    pub async fn list_repos(&self, q: &RepoQuery) -> Result<(Vec<RepoRow>, bool), sqlx::Error> {
        let mut b = SqlBuilder::new(format!("SELECT {REPO_COLS} FROM repos WHERE repo_type = "));
        b.push_bind(q.repo_type.as_str());
        // Visibility: public repos, plus private ones in the caller's namespaces.
        b.push(" AND (private = 0");
        if !q.visible_namespaces.is_empty() {
            b.push(" OR namespace IN (").push_list(q.visible_namespaces.iter().map(String::as_str)).push(")");
        }
        b.push(")");
        if let Some(author) = &q.author {
            b.push(" AND namespace = ").push_bind(author.as_str());
        }
        if let Some(search) = &q.search {
            let pattern = format!("%{}%", search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            b.push(" AND LOWER(namespace || '/' || name) LIKE ").push_bind(pattern).push(" ESCAPE '\\'");
        }
        if let Some(pipeline) = &q.pipeline_tag {
            b.push(" AND pipeline_tag = ").push_bind(pipeline.as_str());
        }
        for tag in &q.tags {
            b.push(" AND id IN (SELECT repo_id FROM repo_tags WHERE tag = ").push_bind(tag.as_str()).push(")");
        }
        let column = match q.sort {
            RepoSort::LastModified => "last_modified",
            RepoSort::CreatedAt => "created_at",
            RepoSort::Downloads => "downloads",
            RepoSort::Likes => "likes",
            RepoSort::Id => "namespace",
        };
        let dir = if q.ascending { "ASC" } else { "DESC" };
        b.push(&format!(" ORDER BY {column} {dir}, namespace {dir}, name {dir}"));
        b.push(" LIMIT ").push_bind(q.limit + 1).push(" OFFSET ").push_bind(q.offset);
        let rows: Vec<RepoRecord> = b.fetch_all(self.pool()).await?;
        let more = rows.len() as i64 > q.limit;
        Ok((rows.into_iter().take(q.limit as usize).map(RepoRow::from).collect(), more))
    }

    pub async fn safetensors_summary(&self, oid: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT summary FROM safetensors_summaries WHERE oid = $1").bind(oid).fetch_optional(self.pool()).await
    }

    pub async fn store_safetensors_summary(&self, oid: &str, summary: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO safetensors_summaries (oid, summary) VALUES ($1, $2) ON CONFLICT (oid) DO NOTHING")
            .bind(oid)
            .bind(summary)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
