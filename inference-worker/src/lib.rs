//! inference-worker: Candle pipelines behind the Hugging Face Inference API wire format.
//!
//! Models come from the hub through hub-client (the on-disk cache), run on candle, and answer in
//! the shapes huggingface_hub's `InferenceClient` parses.

pub mod error;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod pipelines;
pub mod registry;
pub mod server;
