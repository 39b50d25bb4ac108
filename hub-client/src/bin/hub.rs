//! `hub`: download, upload and manage repos on a Hugging Face compatible hub.

use clap::{Args, Parser, Subcommand};
use hub_client::{HubClient, HubError, ListQuery, Progress, RepoType, UploadFile};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Download, upload and manage models, datasets and spaces on a Hugging Face compatible hub.
///
/// Reads the same settings as huggingface_hub: HF_ENDPOINT (the hub), HF_TOKEN or the token
/// saved by `hub login`, HF_HOME / HF_HUB_CACHE (the cache, shared with Python) and
/// HF_HUB_OFFLINE; large files travel through Xet where the hub offers it, unless
/// HF_HUB_DISABLE_XET=1.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 not allowed, 5 hub unreachable or not cached")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// The hub's URL.
    #[arg(long, env = "HF_ENDPOINT", global = true, default_value = "https://huggingface.co")]
    endpoint: String,
    /// Access token (default: HF_TOKEN, then the one saved by `hub login`).
    #[arg(long, global = true, hide_env_values = true)]
    token: Option<String>,
    /// Cache directory (default: HF_HUB_CACHE or HF_HOME/hub).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// No progress bars or messages; only results and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Args, Clone)]
struct RepoArgs {
    /// namespace/name
    repo: String,
    /// model, dataset or space.
    #[arg(long, default_value = "model")]
    repo_type: RepoType,
}

#[derive(Subcommand)]
enum Command {
    /// Save a token where huggingface_hub looks for it ($HF_HOME/token).
    Login {
        /// The token (default: read one line from standard input).
        #[arg(long = "with-token")]
        with_token: Option<String>,
    },
    /// Show who the token belongs to.
    Whoami,
    /// Download files (or the whole repo) into the cache and print where they are.
    Download {
        #[command(flatten)]
        repo: RepoArgs,
        /// Files to download (default: all).
        files: Vec<String>,
        #[arg(long, default_value = "main")]
        revision: String,
        /// Only files matching these globs.
        #[arg(long)]
        include: Vec<String>,
        /// Skip files matching these globs.
        #[arg(long)]
        exclude: Vec<String>,
        /// Also place the files in this directory (real files, not links).
        #[arg(long)]
        local_dir: Option<PathBuf>,
    },
    /// Upload a file or a folder in one commit (the repo is created if missing).
    Upload {
        #[command(flatten)]
        repo: RepoArgs,
        /// A local file or folder.
        path: PathBuf,
        /// Where it goes in the repo (default: the file name, or the root for a folder).
        path_in_repo: Option<String>,
        #[arg(long, default_value = "main")]
        revision: String,
        #[arg(long, short = 'm')]
        commit_message: Option<String>,
        /// Create the repo as private when it does not exist.
        #[arg(long)]
        private: bool,
    },
    /// Create or delete repos.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// List the files of a repo.
    Ls {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, default_value = "main")]
        revision: String,
        /// Only under this folder.
        #[arg(long, default_value = "")]
        path: String,
        /// Whole tree.
        #[arg(long, short = 'R')]
        recursive: bool,
    },
    /// Search repos.
    Search {
        /// Words in the repo id.
        query: Option<String>,
        #[arg(long)]
        author: Option<String>,
        #[arg(long)]
        filter: Vec<String>,
        #[arg(long, default_value = "model")]
        repo_type: RepoType,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Create a repo.
    Create {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        private: bool,
        /// Succeed if it already exists.
        #[arg(long)]
        exist_ok: bool,
    },
    /// Delete a repo and all its files.
    Delete {
        #[command(flatten)]
        repo: RepoArgs,
    },
}

/// One bytes bar for a whole command.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, _name: &str, total: u64) {
        self.0.inc_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

fn bar(quiet: bool) -> Arc<Bar> {
    let pb = ProgressBar::with_draw_target(Some(0), if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() });
    pb.set_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bar:30} {binary_bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Arc::new(Bar(pb))
}

fn exit_code(e: &HubError) -> u8 {
    match e {
        HubError::RepoNotFound { .. } | HubError::RevisionNotFound { .. } | HubError::EntryNotFound { .. } => 3,
        HubError::Unauthorized { .. } | HubError::Forbidden { .. } => 4,
        HubError::Network(_) | HubError::NotCached { .. } => 5,
        _ => 1,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.downcast_ref::<HubError>().map(exit_code).unwrap_or(1);
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    let progress = bar(g.quiet);
    let mut builder = HubClient::builder()
        .endpoint(&g.endpoint)
        .token(g.token.clone().or_else(hub_client::token_from_env))
        .offline(std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes")))
        .progress(progress.clone())
        .xet(!hub_client::xet_disabled_by_env());
    if let Some(dir) = &g.cache_dir {
        builder = builder.cache_dir(dir);
    }
    let hub = builder.build()?;
    let say = |msg: String| {
        if !g.quiet {
            eprintln!("{msg}");
        }
    };
    match cli.command {
        Command::Login { with_token } => {
            let token = match with_token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_string()
                }
            };
            anyhow::ensure!(!token.is_empty(), "no token given (pass --with-token or one line on standard input)");
            let checked = HubClient::builder().endpoint(&g.endpoint).token(Some(token.clone())).build()?;
            let me = checked.whoami().await?;
            let path = std::env::var("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|_| hub_client::cache::hf_home().join("token"));
            hub_client::cache::write_atomic(&path, token.as_bytes())?;
            say(format!("Logged in as {} (token saved to {})", me.name, path.display()));
        }
        Command::Whoami => {
            let me = hub.whoami().await?;
            println!("{}", me.name);
            let orgs: Vec<String> = me.orgs.iter().map(|o| o.name.clone()).collect();
            if !orgs.is_empty() {
                println!("orgs: {}", orgs.join(", "));
            }
        }
        Command::Download { repo, files, revision, include, exclude, local_dir } => {
            let r = hub.repo(repo.repo_type, &repo.repo, &revision);
            let (root, fetched): (PathBuf, Vec<PathBuf>) = if files.is_empty() {
                let inc: Vec<&str> = include.iter().map(String::as_str).collect();
                let exc: Vec<&str> = exclude.iter().map(String::as_str).collect();
                let dir = r.snapshot(&inc, &exc).await?;
                (dir.clone(), vec![dir])
            } else {
                let mut paths = Vec::new();
                for f in &files {
                    paths.push(r.get(f).await?);
                }
                let commit = r.cache().read_ref(&revision).unwrap_or_else(|| revision.clone());
                (r.cache().snapshot_dir(&commit), paths)
            };
            progress.0.finish_and_clear();
            match local_dir {
                Some(dir) => {
                    copy_tree(&root, &dir, if files.is_empty() { None } else { Some(&files) })?;
                    println!("{}", dir.display());
                }
                None if fetched.len() == 1 => println!("{}", fetched[0].display()),
                None => fetched.iter().for_each(|p| println!("{}", p.display())),
            }
        }
        Command::Upload { repo, path, path_in_repo, revision, commit_message, private } => {
            hub.create_repo(repo.repo_type, &repo.repo, private, true).await?;
            let r = hub.repo(repo.repo_type, &repo.repo, &revision);
            let info = if path.is_dir() {
                let message = commit_message.unwrap_or_else(|| "Upload folder using hub".into());
                r.upload_folder(&path, path_in_repo.as_deref().unwrap_or(""), &message).await?
            } else {
                let name = path_in_repo.unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
                let message = commit_message.unwrap_or_else(|| format!("Upload {name} with hub"));
                r.upload_files(vec![UploadFile { local: path.clone(), path_in_repo: name }], &[], &message, None).await?
            };
            progress.0.finish_and_clear();
            if !info.ignored.is_empty() {
                say(format!("skipped (.gitignore): {}", info.ignored.join(", ")));
            }
            if let Some(x) = &info.xet {
                say(format!(
                    "Xet: {} of {} already on the hub, {} sent",
                    indicatif::HumanBytes(x.deduplicated_bytes),
                    indicatif::HumanBytes(x.bytes),
                    indicatif::HumanBytes(x.xorb_bytes + x.shard_bytes)
                ));
            }
            println!("{}", info.url);
        }
        Command::Repo(RepoCommand::Create { repo, private, exist_ok }) => {
            let url = hub.create_repo(repo.repo_type, &repo.repo, private, exist_ok).await?;
            println!("{url}");
        }
        Command::Repo(RepoCommand::Delete { repo }) => {
            hub.delete_repo(repo.repo_type, &repo.repo).await?;
            say(format!("deleted {}", repo.repo));
        }
        Command::Ls { repo, revision, path, recursive } => {
            let r = hub.repo(repo.repo_type, &repo.repo, &revision);
            for e in r.tree(&path, recursive).await? {
                if e.is_dir() {
                    println!("{:>12}  {}/", "-", e.path);
                } else {
                    println!("{:>12}  {}{}", e.size, e.path, if e.lfs.is_some() { "  (lfs)" } else { "" });
                }
            }
        }
        Command::Search { query, author, filter, repo_type, limit } => {
            let q = ListQuery { search: query, author, filter, sort: None, limit: Some(limit) };
            for m in hub.list(repo_type, &q).await? {
                println!("{}", m.id);
            }
        }
    }
    Ok(())
}

/// Copies (following the cache's links) a snapshot, or some files of it, into `dest`.
fn copy_tree(src: &std::path::Path, dest: &std::path::Path, only: Option<&Vec<String>>) -> std::io::Result<()> {
    let files: Vec<String> = match only {
        Some(list) => list.clone(),
        None => {
            let mut out = Vec::new();
            let mut stack = vec![src.to_path_buf()];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(&dir)? {
                    let p = e?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if let Ok(rel) = p.strip_prefix(src) {
                        out.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
            out
        }
    };
    for rel in files {
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(src.join(&rel), target)?;
    }
    Ok(())
}
