//! Metadata in SQL. One code path for both backends through sqlx's `Any` driver: SQLite (the
//! embedded default) and Postgres, each with its own migrations folder. Queries use `$N`
//! placeholders, which both backends accept. Timestamps are milliseconds since the epoch.

mod accounts;
mod gc;
mod objects;
mod repos;
mod web;
mod xet;

pub use accounts::*;
pub use gc::*;
pub use objects::*;
pub use repos::*;
pub use web::*;
pub use xet::*;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The database as the monitor last saw it.
#[derive(Default)]
struct Health {
    /// The last ping failed to reach it (requests then fail fast instead of queueing).
    down: AtomicBool,
    /// When it last answered (ms since the epoch; 0: not yet).
    last_ok_ms: AtomicI64,
    /// Woken when the monitor finds the database gone, so requests already waiting for a
    /// connection answer then instead of at the pool's acquire timeout.
    went_down: tokio::sync::Notify,
    /// Woken when it answers again after being down.
    came_back: tokio::sync::Notify,
}

/// How often the monitor pings the database, and how long one ping may take.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// What the last pings found: the database answering, and when it last did.
    health: Arc<Health>,
    /// Postgres: the connections that hold repo write locks, apart from `pool`, so writers
    /// waiting on or holding locks can never take the connections their own queries need.
    locks: Option<AnyPool>,
    backend: Backend,
}

/// Repo write locks held at once per process (Postgres); more writers wait for one.
const LOCK_CONNECTIONS: u32 = 32;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects to `sqlite://…` or `postgres://…`, creating a SQLite file when missing.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…");
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(acquire_timeout);
        options = match backend {
            Backend::Sqlite => options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; busy_timeout waits out write locks.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(16),
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_string(),
        };
        let pool = options.connect(&url).await?;
        let locks = match backend {
            Backend::Postgres => Some(
                AnyPoolOptions::new()
                    .max_connections(LOCK_CONNECTIONS)
                    .min_connections(0)
                    .acquire_timeout(acquire_timeout)
                    .connect_lazy(&url)?,
            ),
            Backend::Sqlite => None,
        };
        Ok(Db { pool, locks, backend, health: Arc::new(Health::default()) })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// Pings the database every second for as long as the process runs, so that health checks
    /// answer from memory and, while it is down, requests fail at once rather than queue.
    pub fn start_monitor(&self) {
        let db = self.clone();
        db.health.last_ok_ms.store(now_ms(), Ordering::Relaxed);
        tokio::spawn(async move {
            loop {
                let ok = matches!(tokio::time::timeout(PING_TIMEOUT, db.ping()).await, Ok(Ok(())));
                if ok {
                    db.health.last_ok_ms.store(now_ms(), Ordering::Relaxed);
                }
                let was_down = db.health.down.swap(!ok, Ordering::Relaxed);
                if was_down && ok {
                    tracing::info!("the database answers again");
                    db.health.came_back.notify_waiters();
                } else if !was_down && !ok {
                    tracing::warn!("the database does not answer");
                    db.health.went_down.notify_waiters();
                }
                tokio::time::sleep(PING_EVERY).await;
            }
        });
    }

    /// Whether the last ping failed to reach the database.
    pub fn is_down(&self) -> bool {
        self.health.down.load(Ordering::Relaxed)
    }

    /// Completes when the monitor next finds the database gone (not if it is already down).
    pub async fn went_down(&self) {
        self.health.went_down.notified().await
    }

    /// Completes when the monitor next finds the database answering again after being down.
    pub async fn came_back(&self) {
        self.health.came_back.notified().await
    }

    /// Milliseconds since the database last answered a ping.
    pub fn since_last_answer_ms(&self) -> i64 {
        now_ms() - self.health.last_ok_ms.load(Ordering::Relaxed)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// True when an insert failed on a UNIQUE constraint (the name is taken).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// A query put together piece by piece, for the few whose shape depends on the request (filters,
/// `IN (…)` lists). Placeholders are numbered `$N`, which both backends accept; sqlx's own
/// `QueryBuilder` writes `?` for the `Any` driver, which Postgres refuses.
pub(crate) struct SqlBuilder<'a> {
    sql: String,
    args: AnyArguments<'a>,
    n: usize,
    /// The first argument that could not be encoded: the query then fails with it.
    error: Option<sqlx::error::BoxDynError>,
}

impl<'a> SqlBuilder<'a> {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        SqlBuilder { sql: sql.into(), args: AnyArguments::default(), n: 0, error: None }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + sqlx::Encode<'a, Any> + sqlx::Type<Any>,
    {
        use sqlx::Arguments;
        self.n += 1;
        self.sql.push('$');
        self.sql.push_str(&self.n.to_string());
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Appends `$i, $j, …` for `values`, bound in order.
    pub(crate) fn push_list<T, I>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: 'a + sqlx::Encode<'a, Any> + sqlx::Type<Any>,
    {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.push_bind(v);
        }
        self
    }

    pub(crate) async fn fetch_all<T>(self, pool: &AnyPool) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        let SqlBuilder { sql, args, error, .. } = self;
        if let Some(e) = error {
            return Err(sqlx::Error::Encode(e));
        }
        sqlx::query_as_with::<Any, T, _>(&sql, args).fetch_all(pool).await
    }
}

/// A write lock on one repository shared by every hub process on the same database (a
/// Postgres advisory lock, held on one pooled connection). SQLite serves one process, whose
/// in-process mutex already serializes writers.
pub struct RepoWriteLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    key: i64,
}

impl Db {
    pub async fn lock_repo(&self, repo_id: &str) -> Result<RepoWriteLock, sqlx::Error> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(repo_id.as_bytes());
        let key = i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        match &self.locks {
            None => Ok(RepoWriteLock { conn: None, key }),
            Some(locks) => {
                let mut conn = locks.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut *conn).await?;
                Ok(RepoWriteLock { conn: Some(conn), key })
            }
        }
    }
}

impl RepoWriteLock {
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)").bind(self.key).execute(&mut *conn).await {
                tracing::warn!(error = %e, "could not release a repo lock; closing its connection");
                drop(conn.detach());
            }
        }
    }
}

impl Drop for RepoWriteLock {
    fn drop(&mut self) {
        // Not released (a cancelled request): closing the connection frees the lock.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}
