//! hub-client: `from_pretrained` for Rust. Downloads into (and reads from) the same cache as
//! huggingface_hub, so Python and Rust share one copy; uploads like `upload_folder`. Large files
//! travel through Xet where the hub offers it (deduplicated against earlier uploads, sharing
//! hf_xet's shard cache), through LFS and plain HTTP where it does not, or with
//! `HF_HUB_DISABLE_XET=1` / [`HubClientBuilder::xet`]`(false)`.
//!
//! ```no_run
//! # async fn demo() -> hub_client::Result<()> {
//! let hub = hub_client::HubClient::from_env()?;           // HF_ENDPOINT, HF_TOKEN, HF_HOME…
//! let model_dir = hub.model("alice/tiny-bert").from_pretrained().await?;
//! let config = hub.model("alice/tiny-bert").get("config.json").await?;
//! # Ok(()) }
//! ```
//!
//! Without the default `client` feature only the wire types compile (for hub-server).

pub mod types;
pub mod xet_types;

#[cfg(feature = "client")]
mod api;
#[cfg(feature = "client")]
mod builder;
#[cfg(feature = "client")]
pub mod cache;
#[cfg(feature = "client")]
mod download;
#[cfg(feature = "client")]
mod error;
#[cfg(feature = "client")]
mod upload;
#[cfg(feature = "client")]
pub mod xet;

#[cfg(feature = "client")]
pub use api::{token_from_env, xet_disabled_by_env, HubClient, HubClientBuilder, ListQuery, Progress, Repo};
#[cfg(feature = "client")]
pub use download::{snapshot_files, FileMetadata};
#[cfg(feature = "client")]
pub use error::{HubError, Result};
pub use types::RepoType;
#[cfg(feature = "client")]
pub use upload::{collect_folder, CommitInfo, UploadFile};
