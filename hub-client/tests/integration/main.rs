//! hub-client's integration tests, one binary: the client against real hub-server processes,
//! and the Xet formats against hf_xet's reference implementation.
#![allow(clippy::unwrap_used)]

mod client;
mod xet;
mod xet_reference;
