//! What the web UI keeps: browser sessions, and the token list of an account.

use super::{now_ms, Db};

#[derive(Debug, Clone, sqlx::FromRow)]
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
        sqlx::query_scalar("SELECT data FROM web_sessions WHERE id = $1 AND expires_at > $2")
            .bind(id)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await
    }

    pub async fn session_delete(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM web_sessions WHERE id = $1 OR expires_at < $2").bind(id).bind(now_ms()).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn find_account_by_id(&self, id: i64) -> Result<Option<super::Account>, sqlx::Error> {
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM accounts WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        match name {
            Some(name) => self.find_account(&name).await,
            None => Ok(None),
        }
    }

    /// The members of an organisation and their roles, by name.
    pub async fn members_of(&self, org_id: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT a.name, m.role FROM org_members m JOIN accounts a ON a.id = m.user_id WHERE m.org_id = $1 ORDER BY a.name")
            .bind(org_id)
            .fetch_all(self.pool())
            .await
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
        sqlx::query_as("SELECT id, name, role, created_at, last_used_at FROM tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(user_id)
            .fetch_all(self.pool())
            .await
    }

    /// Revokes one of a user's tokens; false when it was not theirs.
    pub async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM tokens WHERE id = $1 AND user_id = $2").bind(token_id).bind(user_id).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }
}
