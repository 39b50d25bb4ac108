//! Browser sessions (tower-sessions) stored in the hub's database, so every replica sees them.

use crate::db::Db;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions::SessionStore;

#[derive(Clone)]
pub struct DbSessionStore(pub Db);

impl std::fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessionStore")
    }
}

/// Session ids are stored hashed: a database dump does not hand out live sessions.
fn key(id: &Id) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(id.to_string().as_bytes()))
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn save(&self, record: &Record) -> Result<()> {
        let data = serde_json::to_string(record).map_err(|e| Error::Encode(e.to_string()))?;
        let expires = (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64;
        self.0.session_save(&key(&record.id), &data, expires).await.map_err(|e| Error::Backend(e.to_string()))
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let data = self.0.session_load(&key(id)).await.map_err(|e| Error::Backend(e.to_string()))?;
        data.map(|d| serde_json::from_str(&d).map_err(|e| Error::Decode(e.to_string()))).transpose()
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.0.session_delete(&key(id)).await.map_err(|e| Error::Backend(e.to_string()))
    }
}
