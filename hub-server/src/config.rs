//! Settings shared by every subcommand, from flags or `HUB_*` environment variables.

use std::path::PathBuf;

/// Settings print with `{:?}` (in logs, panics): secrets show as `<redacted>`, and a database
/// URL keeps everything but its password.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Where repositories, LFS objects and the SQLite database live.
    #[arg(long, env = "HUB_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Metadata database: sqlite://PATH (default: DATA_DIR/hub.db) or postgres://…
    #[arg(long, env = "HUB_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Object storage (LFS objects, xorbs, shards): file:///PATH, or s3://BUCKET[/PREFIX] with the
    /// standard AWS_* variables (default: DATA_DIR/objects).
    #[arg(long, env = "HUB_STORAGE_URL", global = true)]
    pub storage_url: Option<String>,

    /// The URL clients use to reach this hub (default: http://<Host header>).
    #[arg(long, env = "HUB_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Key for signing LFS transfer URLs (default: generated once into DATA_DIR/secret).
    #[arg(long, env = "HUB_SECRET", global = true, hide_env_values = true)]
    pub secret: Option<Secret>,

    /// LFS objects at least this large are offered the multipart transfer (bytes).
    #[arg(long, env = "HUB_LFS_MULTIPART_THRESHOLD", default_value_t = 512 * 1024 * 1024, global = true)]
    pub lfs_multipart_threshold: u64,

    /// Part size of multipart LFS uploads (bytes).
    #[arg(long, env = "HUB_LFS_PART_SIZE", default_value_t = 64 * 1024 * 1024, global = true)]
    pub lfs_part_size: u64,

    /// Largest LFS object accepted (bytes).
    #[arg(long, env = "HUB_LFS_MAX_OBJECT_BYTES", default_value_t = 500 * 1024 * 1024 * 1024, global = true)]
    pub lfs_max_object_bytes: u64,

    /// Most multipart part URLs one LFS upload batch answer holds, all objects together; objects
    /// past the budget are offered a single-request upload instead (bounds the answer's size, its
    /// signing time and the multipart uploads begun per request).
    #[arg(long, env = "HUB_LFS_BATCH_MAX_PARTS", default_value_t = 10_000, global = true)]
    pub lfs_batch_max_parts: u64,

    /// Largest NDJSON commit body accepted (bytes); inline files count base64-encoded.
    #[arg(long, env = "HUB_MAX_COMMIT_BYTES", default_value_t = 1024 * 1024 * 1024, global = true)]
    pub max_commit_bytes: u64,

    /// The hub-server binary that git hooks and the git launcher run (default: this executable).
    #[arg(long, env = "HUB_GIT_HOOK_BIN", global = true, hide = true)]
    pub git_hook_bin: Option<PathBuf>,

    /// Whether anyone may create an account from the web UI's sign-up page.
    #[arg(long, env = "HUB_ALLOW_SIGNUP", global = true, default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_signup: bool,

    /// Memory that uploads in flight may buffer, process-wide (MiB): past it, uploads wait
    /// for their turn instead of growing the process.
    #[arg(long, env = "HUB_UPLOAD_MEMORY_MIB", default_value_t = 64, global = true)]
    pub upload_memory_mib: u64,

    /// How long a request waits for a database connection under load before a 503 (seconds;
    /// while the database is down, requests fail at once).
    #[arg(long, env = "HUB_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 30, global = true)]
    pub db_acquire_timeout_secs: u64,

    /// Reads (GET, HEAD) must start answering within this many seconds, else 503 (0: no limit).
    #[arg(long, env = "HUB_REQUEST_TIMEOUT_SECS", default_value_t = 120, global = true)]
    pub request_timeout_secs: u64,

    /// A request body that sends nothing for this many seconds is cut off (uploads may take
    /// hours, but not stall).
    #[arg(long, env = "HUB_BODY_IDLE_TIMEOUT_SECS", default_value_t = 120, global = true)]
    pub body_idle_timeout_secs: u64,

    /// Failed web logins allowed per account in 5 minutes, then refused (429) until it passes.
    #[arg(long, env = "HUB_LOGIN_MAX_FAILURES", default_value_t = 5, global = true)]
    pub login_max_failures: usize,

    /// Failed web logins allowed per client address in 5 minutes (whatever the account name).
    #[arg(long, env = "HUB_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 50, global = true)]
    pub login_max_failures_per_ip: usize,

    /// inference-worker URLs that serve the Inference API and model-page widgets
    /// (comma-separated: requests are spread over them). Unset: inference is off.
    #[arg(long, env = "HUB_INFERENCE_URL", global = true)]
    pub inference_url: Option<String>,

    /// Largest Xet shard a client may register (bytes; hf_xet splits at 64 MiB).
    #[arg(long, env = "HUB_XET_MAX_SHARD_BYTES", default_value_t = 64 * 1024 * 1024, global = true)]
    pub xet_max_shard_bytes: u64,

    /// Most chunks the files of one shard may reference (about 64 KiB each; memory while
    /// checking a shard grows by 40 bytes per chunk).
    #[arg(long, env = "HUB_XET_MAX_SHARD_CHUNKS", default_value_t = 4_000_000, global = true)]
    pub xet_max_shard_chunks: u64,

    /// Xorb uploads checked and stored at once by one process (each holds ~10 MiB); others wait.
    #[arg(long, env = "HUB_XET_UPLOAD_CONCURRENCY", default_value_t = 4, global = true)]
    pub xet_upload_concurrency: usize,

    /// Lifetime of Xet access tokens (seconds; clients refresh them before they expire).
    #[arg(long, env = "HUB_XET_TOKEN_TTL", default_value_t = 3600, global = true)]
    pub xet_token_ttl: u64,

    /// Garbage collection keeps anything written or used within this many days (at least 21:
    /// Xet clients reuse chunks they uploaded for three weeks without asking).
    #[arg(long, env = "HUB_GC_GRACE_DAYS", default_value_t = 21, global = true)]
    pub gc_grace_days: u64,

    /// Run garbage collection every this many hours inside `serve` (0: only `hub-server gc`).
    #[arg(long, env = "HUB_GC_INTERVAL_HOURS", default_value_t = 0, global = true)]
    pub gc_interval_hours: u64,

    /// How many times one S3 request is retried (with exponential backoff from 100 ms) before
    /// the hub answers 503 with Retry-After: with 5, an S3 server that is down costs a request a
    /// few seconds (object_store's default of 10 took ~13 s); a slow one still gets its retries.
    #[arg(long, env = "HUB_S3_MAX_RETRIES", default_value_t = 5, global = true)]
    pub s3_max_retries: usize,

    /// Threads that run the async side: every request, /health included (0: one per CPU). More
    /// hold more transfers in flight at once, each with its buffers: Postgres + S3 peak RSS in the
    /// load suite was 301-318 MiB with 4 on 2 cores, against 270 with 2. See runtime.rs.
    #[arg(long, env = "HUB_WORKER_THREADS", default_value_t = 0, global = true)]
    pub worker_threads: usize,

    /// Threads for blocking work (file I/O, git, hashing). Few enough that the async threads,
    /// which answer every request, are not starved by a crowd of runnable blocking ones.
    #[arg(long, env = "HUB_BLOCKING_THREADS", default_value_t = 8, global = true)]
    pub blocking_threads: usize,

    /// How much lower the blocking threads' priority is than the async threads' (added to their
    /// nice value, 0-19; 0 turns it off). Bulk work then takes only the CPU that answering
    /// requests leaves, so /health and metadata stay fast during heavy transfers (runtime.rs).
    #[arg(long, env = "HUB_BLOCKING_NICE", default_value_t = 10, global = true, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub blocking_nice: i32,

    /// The longest a replica answers from cached metadata (repo rows, tokens, held objects)
    /// without re-reading it. Writes make caches stale at once on every replica sharing the data
    /// directory (see read_cache.rs); this bounds only what a writer killed mid-write leaves.
    /// 0 turns the metadata caches off.
    #[arg(long, env = "HUB_READ_CACHE_MAX_AGE_MS", default_value_t = 2000, global = true)]
    pub read_cache_max_age_ms: u64,

    /// When set, `/metrics` answers only requests with `Authorization: Bearer <this token>`;
    /// unset, it is open to anyone who can reach the hub (it shows route patterns and totals,
    /// never repo names).
    #[arg(long, env = "HUB_METRICS_TOKEN", global = true, hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "HUB_LOG_JSON", global = true)]
    pub log_json: bool,
}

/// A setting that must stay out of logs: `Debug` hides it (a URL keeps all but its password);
/// the value itself only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // scheme://user:password@host/… → scheme://user:<redacted>@host/…
        if let Some((scheme, rest)) = self.0.split_once("://") {
            if let Some((userinfo, host)) = rest.split_once('@') {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                return write!(f, "\"{scheme}://{user}:<redacted>@{host}\"");
            }
            return write!(f, "{:?}", self.0);
        }
        f.write_str("\"<redacted>\"")
    }
}

impl Settings {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("hub.db").display()),
        }
    }

    pub fn inference_urls(&self) -> Vec<String> {
        self.inference_url
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("HUB_PUBLIC_URL must start with http:// or https:// (got {url:?})");
            }
        }
        for url in self.inference_urls() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("HUB_INFERENCE_URL entries must start with http:// or https:// (got {url:?})");
            }
        }
        if self.upload_memory_mib < 16 {
            anyhow::bail!("HUB_UPLOAD_MEMORY_MIB must be at least 16 (one S3 part per upload needs 5 MiB)");
        }
        if self.db_acquire_timeout_secs == 0 {
            anyhow::bail!("HUB_DB_ACQUIRE_TIMEOUT_SECS must be at least 1");
        }
        if self.body_idle_timeout_secs == 0 {
            anyhow::bail!("HUB_BODY_IDLE_TIMEOUT_SECS must be at least 1");
        }
        if self.gc_grace_days < 21 {
            anyhow::bail!("HUB_GC_GRACE_DAYS must be at least 21: Xet clients reuse uploaded chunks for three weeks");
        }
        if !(300..=86_400).contains(&self.xet_token_ttl) {
            anyhow::bail!("HUB_XET_TOKEN_TTL must be between 300 and 86400 seconds");
        }
        if self.lfs_part_size < 5 * 1024 * 1024 {
            anyhow::bail!("HUB_LFS_PART_SIZE must be at least 5 MiB (the S3 minimum part size)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_keeps_secrets_out() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: Settings,
        }
        let flags = <Flags as clap::Parser>::try_parse_from([
            "hub-server",
            "--secret",
            "s3cr3t-signing-key",
            "--database-url",
            "postgres://hub:hunter2-db@db.internal:5432/hub",
        ])
        .unwrap();
        let shown = format!("{:?}", flags.settings);
        assert!(!shown.contains("s3cr3t") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://hub:<redacted>@db.internal:5432/hub"), "{shown}");
        assert_eq!(flags.settings.database_url(), "postgres://hub:hunter2-db@db.internal:5432/hub");
        assert_eq!(flags.settings.secret.unwrap().expose(), "s3cr3t-signing-key");
        assert_eq!(format!("{:?}", Secret::from("sqlite:///data/hub.db")), "\"sqlite:///data/hub.db\"");
    }
}
