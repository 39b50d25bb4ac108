//! Users, organisations, memberships and access tokens.

use super::{now_ms, Db};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub is_org: bool,
    pub fullname: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub role: Role,
}

const ACCOUNT_COLS: &str = "id, name, kind, fullname, email, password_hash, created_at";

/// An `accounts` row as stored (`kind` is `user` or `org`).
#[derive(sqlx::FromRow)]
struct AccountRecord {
    id: i64,
    name: String,
    kind: String,
    fullname: Option<String>,
    email: Option<String>,
    password_hash: Option<String>,
    created_at: i64,
}

impl From<AccountRecord> for Account {
    fn from(r: AccountRecord) -> Account {
        Account {
            id: r.id,
            name: r.name,
            is_org: r.kind == "org",
            fullname: r.fullname,
            email: r.email,
            password_hash: r.password_hash,
            created_at: r.created_at,
        }
    }
}

/// A token joined with its owner's account.
#[derive(sqlx::FromRow)]
struct TokenRecord {
    token_id: i64,
    token_name: String,
    token_role: String,
    #[sqlx(flatten)]
    account: AccountRecord,
}

impl Db {
    pub async fn create_account(
        &self,
        name: &str,
        is_org: bool,
        email: Option<&str>,
        password_hash: Option<&str>,
    ) -> Result<Account, sqlx::Error> {
        let row: AccountRecord = sqlx::query_as(&format!(
            "INSERT INTO accounts (name, kind, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {ACCOUNT_COLS}"
        ))
        .bind(name)
        .bind(if is_org { "org" } else { "user" })
        .bind(email)
        .bind(password_hash)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(row.into())
    }

    pub async fn find_account(&self, name: &str) -> Result<Option<Account>, sqlx::Error> {
        let row: Option<AccountRecord> =
            sqlx::query_as(&format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE name = $1")).bind(name).fetch_optional(self.pool()).await?;
        Ok(row.map(Account::from))
    }

    /// Adds or updates a membership.
    pub async fn set_member(&self, org_id: i64, user_id: i64, role: Role) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The organisations a user belongs to, with their role, by name.
    pub async fn orgs_of(&self, user_id: i64) -> Result<Vec<(String, Role)>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT a.name, m.role FROM org_members m JOIN accounts a ON a.id = m.org_id WHERE m.user_id = $1 ORDER BY a.name",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(name, role)| (name, Role::parse(&role).unwrap_or(Role::Read))).collect())
    }

    pub async fn create_token(&self, user_id: i64, name: &str, role: Role, token_hash: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("INSERT INTO tokens (user_id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(user_id)
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(now_ms())
            .fetch_one(self.pool())
            .await
    }

    /// The token with this hash and the user who owns it.
    pub async fn find_token(&self, token_hash: &str) -> Result<Option<(Token, Account)>, sqlx::Error> {
        let row: Option<TokenRecord> = sqlx::query_as(
            "SELECT t.id AS token_id, t.name AS token_name, t.role AS token_role, \
                    a.id, a.name, a.kind, a.fullname, a.email, a.password_hash, a.created_at \
             FROM tokens t JOIN accounts a ON a.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| {
            let user = Account::from(r.account);
            let token =
                Token { id: r.token_id, user_id: user.id, name: r.token_name, role: Role::parse(&r.token_role).unwrap_or(Role::Read) };
            (token, user)
        }))
    }
}
