use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use inference_worker::registry::{Registry, RegistryConfig};
use inference_worker::server::{router, Worker};

// Inference allocates and frees large tensors at every step; glibc returns them to the kernel
// each time (page faults on every reuse), mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "inference-worker", version, about = "Candle pipelines behind the Hugging Face Inference API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve inference for the models of one hub.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The hub models are fetched from (private ones with the token the hub forwards).
    #[arg(long, env = "INFERENCE_HUB_URL")]
    hub: String,
    /// Address to listen on. Keep it private: the hub checks access before forwarding.
    #[arg(long, env = "INFERENCE_BIND", default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// Where downloaded models are cached (huggingface_hub's layout). Default: $HF_HOME/hub.
    #[arg(long, env = "INFERENCE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Models kept loaded; the least recently used one is dropped beyond this.
    #[arg(long, env = "INFERENCE_MAX_MODELS", default_value_t = 4)]
    max_models: usize,
    /// Largest model, in bytes, the worker downloads and loads (weights, configs and card
    /// together, as the hub lists them). Larger ones are refused with 400 before any download.
    /// A GGUF model takes about twice its file size in memory.
    #[arg(long, env = "INFERENCE_MAX_MODEL_BYTES", default_value_t = 10_000_000_000)]
    max_model_bytes: u64,
    /// Forward passes or generation steps running at once, across all models.
    #[arg(long, env = "INFERENCE_MAX_CONCURRENCY", default_value_t = 1)]
    max_concurrency: usize,
    /// Most texts one encoder forward pass takes when requests are batched together.
    #[arg(long, env = "INFERENCE_MAX_BATCH", default_value_t = 32)]
    max_batch: usize,
    /// Generation sequences one model decodes together, each step reading the weights once for
    /// all of them; more requests wait in its queue.
    #[arg(long, env = "INFERENCE_MAX_STREAMS", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_streams: u64,
    /// Generation requests that may wait for a place in a model's decode batch; more are
    /// answered 503 with Retry-After.
    #[arg(long, env = "INFERENCE_STREAM_QUEUE", default_value_t = 64)]
    stream_queue: usize,
    /// Seconds a request may run before it is stopped with 504 (loading the model not included).
    #[arg(long, env = "INFERENCE_TIMEOUT", default_value_t = 120.0)]
    timeout: f64,
}

fn device() -> anyhow::Result<candle_core::Device> {
    #[cfg(feature = "cuda")]
    {
        Ok(candle_core::Device::new_cuda(0).context("no CUDA device")?)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(candle_core::Device::Cpu)
    }
}

/// candle runs elementwise ops on its own pool of one thread per core, beside rayon's (gemm's and
/// ours). Its threads spin 25,000 times after each op before sleeping, taking the cores from
/// rayon's threads when the next op is a matmul: on 2 cores, a MiniLM batch ran ~8% slower than
/// with 100 spins. An operator's own setting wins.
const CANDLE_SPIN_LIMIT: &str = "100";

fn main() -> anyhow::Result<()> {
    // Before any thread exists (the runtime is started below), so nothing reads them meanwhile.
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
    }
    // candle asks how many threads to use at every matmul; without RAYON_NUM_THREADS, on a VM
    // whose CPUs it cannot rank, that answer parses /proc/cpuinfo each time (~3% of a MiniLM
    // request). Its own answer, asked once, is the same number.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", candle_core::utils::get_num_threads().to_string());
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // Colours only on a terminal: log files and collectors get plain `key=value`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A log that cannot be written (a full disk) loses lines, not requests: the default
        // reports the failed write with `eprintln!`, which panics when stderr is what failed.
        .log_internal_errors(false)
        .init();
    let Command::Serve(args) = Cli::parse().command;
    let cache_dir = args.cache_dir.unwrap_or_else(|| hub_client::cache::hf_home().join("hub"));
    let device = device()?;
    let registry = Registry::new(RegistryConfig {
        hub: args.hub.trim_end_matches('/').to_string(),
        cache_dir,
        device,
        max_models: args.max_models,
        max_model_bytes: args.max_model_bytes,
        max_batch: args.max_batch,
        max_concurrency: args.max_concurrency,
        streams: inference_worker::pipelines::generate::StreamLimits { active: args.max_streams as usize, queued: args.stream_queue },
    });
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    let worker = Arc::new(Worker::new(registry, Duration::from_secs_f64(args.timeout)));
    let listener = tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    tracing::info!(bind = %args.bind, hub = %args.hub, "inference-worker listening");
    axum::serve(listener, router(worker))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
