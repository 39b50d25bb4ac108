//! What the web UI keeps: browser sessions, and the token list of an account.

use super::{get, now_ms, Db};

#[derive(Debug, Clone)]
pub struct TokenSummary {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Db {
    pub async fn session_save(&self, id: &str, data: &str, expires_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO web_sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id)
        .bind(data)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session_load(&self, id: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT data FROM web_sessions WHERE id = $1 AND expires_at > $2")
            .bind(id)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|r| get(r, "data")).transpose()
    }

    pub async fn session_delete(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM web_sessions WHERE id = $1 OR expires_at < $2").bind(id).bind(now_ms()).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn find_account_by_id(&self, id: i64) -> Result<Option<super::Account>, sqlx::Error> {
        let row = sqlx::query("SELECT name FROM accounts WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        match row {
            Some(r) => self.find_account(&get::<String>(&r, "name")?).await,
            None => Ok(None),
        }
    }

    /// The members of an organisation and their roles, by name.
    pub async fn members_of(&self, org_id: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT a.name, m.role FROM org_members m JOIN accounts a ON a.id = m.user_id WHERE m.org_id = $1 ORDER BY a.name")
                .bind(org_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(|r| Ok((get(r, "name")?, get(r, "role")?))).collect()
    }

    pub async fn set_email(&self, account_id: i64, email: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE accounts SET email = $1 WHERE id = $2").bind(email).bind(account_id).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn set_password_hash(&self, account_id: i64, hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2").bind(hash).bind(account_id).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn tokens_of(&self, user_id: i64) -> Result<Vec<TokenSummary>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT id, name, role, created_at, last_used_at FROM tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC")
                .bind(user_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenSummary {
                    id: get(r, "id")?,
                    name: get(r, "name")?,
                    role: get(r, "role")?,
                    created_at: get(r, "created_at")?,
                    last_used_at: get(r, "last_used_at")?,
                })
            })
            .collect()
    }

    /// Revokes one of a user's tokens; false when it was not theirs.
    pub async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM tokens WHERE id = $1 AND user_id = $2").bind(token_id).bind(user_id).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }
}
