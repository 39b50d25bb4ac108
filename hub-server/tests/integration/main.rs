//! hub-server's integration tests, one binary: git2, sqlx, object_store and syntect are linked
//! once instead of once per file. Each module is one area; `common` is the real hub they share.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

#[macro_use]
mod common;

mod bad_input;
mod compose;
mod content;
mod contract;
mod git;
mod inference;
mod lfs;
mod read_cache;
mod repos;
mod web;
