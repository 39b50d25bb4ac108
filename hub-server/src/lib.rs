//! hub-server: a self-hostable hub that speaks the Hugging Face Hub protocol.

pub mod accounts;
pub mod app;
pub mod attributes;
pub mod auth;
pub mod browse;
pub mod card;
pub mod cli;
pub mod commits;
pub mod config;
pub mod content;
pub mod db;
pub mod downloads;
pub mod error;
pub mod extract;
pub mod gc;
pub mod git;
pub mod git_http;
pub mod hooks;
pub mod inference;
pub mod lfs;
pub mod limits;
pub mod markdown;
pub mod metrics;
pub mod names;
pub mod read_cache;
pub mod refs;
pub mod repos;
pub mod routes;
pub mod runtime;
pub mod safetensors;
pub mod sessions;
pub mod storage;
pub mod xet;

pub use app::AppState;
pub use config::Settings;
