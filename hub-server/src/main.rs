use clap::Parser;
use hub_server::cli::{Cli, Command, OrgCommand, TokenCommand, UserCommand};
use hub_server::db::Role;
use hub_server::{accounts, routes, AppState};
use std::io::Read;

/// Logging to stderr through one writer thread: request threads hand it formatted lines and go
/// on, and it writes whatever has queued in one go (under load, one `write` for many access
/// lines instead of one each, which was ~6% of the read path's CPU). Lines wait rather than
/// being dropped when it falls behind; the guard flushes what is left when the process exits.
fn init_logging(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("hub-log")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    // Colours only on a terminal: log files and collectors get plain `key=value`.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer)
        // A log that cannot be written (a full disk) loses lines, not requests: the default
        // reports the failed write with `eprintln!`, which panics when stderr is what failed.
        .log_internal_errors(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Hooks run inside `git receive-pack`: no server state, no logging setup, their own runtime.
    if let Command::GitHook { name } = &cli.command {
        std::process::exit(hub_server::hooks::run(name));
    }
    if let Command::GitBackend = &cli.command {
        std::process::exit(hub_server::git::smart_http::exec_backend());
    }
    let shape = hub_server::runtime::RuntimeShape {
        workers: cli.settings.worker_threads,
        blocking: cli.settings.blocking_threads,
        blocking_nice: cli.settings.blocking_nice,
    };
    hub_server::runtime::build(shape)?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let _log = init_logging(cli.settings.log_json);
    let state = AppState::open(cli.settings).await?;
    match cli.command {
        Command::Serve { bind } => {
            state.storage.sweep_staging();
            match hub_server::gc::backfill_repo_objects(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("recorded {n} LFS objects as held by the repos that reference them"),
                Err(e) => anyhow::bail!("could not record which repo holds which LFS object: {e}"),
            }
            if state.settings.gc_interval_hours > 0 {
                let collecting = state.clone();
                tokio::spawn(async move {
                    let every = std::time::Duration::from_secs(collecting.settings.gc_interval_hours * 3600);
                    loop {
                        tokio::time::sleep(every).await;
                        let collected = hub_server::gc::collect(&collecting, false).await;
                        collecting.cache.epoch.bump();
                        match collected {
                            Ok(r) => tracing::info!(
                                lfs_objects = r.lfs_objects.len(),
                                xorbs = r.xorbs.len(),
                                shards = r.shards.len(),
                                bytes = r.bytes(),
                                "garbage collection done"
                            ),
                            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                        }
                    }
                });
            }
            // At start, and whenever the database returns after being down (a write cut short
            // by the outage may have moved a ref it could not record).
            let reconciling = state.clone();
            tokio::spawn(async move {
                loop {
                    match hub_server::repos::reconcile_heads(&reconciling).await {
                        Ok(0) => {}
                        Ok(n) => {
                            reconciling.cache.epoch.bump();
                            tracing::info!("recorded the git heads of {n} repos the database was behind on")
                        }
                        Err(e) => tracing::warn!(error = %e, "could not reconcile repo heads"),
                    }
                    reconciling.db.came_back().await;
                }
            });
            let listener = tokio::net::TcpListener::bind(bind).await?;
            tracing::info!("hub listening on http://{}", listener.local_addr()?);
            // The client's address: login attempts are also limited per address.
            let app = routes::router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
        }
        Command::Migrate => {
            let n = hub_server::gc::backfill_repo_objects(&state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("database is up to date ({n} LFS objects newly linked to their repos)");
        }
        Command::Gc { dry_run } => {
            let r = hub_server::gc::collect(&state, dry_run).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for (oid, size) in &r.lfs_objects {
                println!("{verb} lfs object {oid} ({size} bytes)");
            }
            for (hash, size) in &r.xorbs {
                println!("{verb} xorb {hash} ({size} bytes)");
            }
            for id in &r.shards {
                println!("{verb} shard {id}");
            }
            for file in &r.xet_files {
                println!("{verb} xet file record {file}");
            }
            for (repo, oid) in &r.released {
                println!("{verb} the hold of repo {repo} on {oid} (no ref reaches it)");
            }
            println!(
                "{verb} {} LFS objects, {} xorbs, {} shards: {} bytes (grace period {} days)",
                r.lfs_objects.len(),
                r.xorbs.len(),
                r.shards.len(),
                r.bytes(),
                state.settings.gc_grace_days
            );
        }
        Command::GitHook { .. } | Command::GitBackend => unreachable!("handled before opening the state"),
        Command::User(UserCommand::Create { name, email, password_stdin }) => {
            let password = if password_stdin {
                let mut p = String::new();
                std::io::stdin().read_to_string(&mut p)?;
                let p = p.trim_end_matches(['\n', '\r']).to_string();
                if p.is_empty() {
                    anyhow::bail!("empty password on standard input");
                }
                Some(p)
            } else {
                None
            };
            let user = accounts::create_user(&state, &name, email.as_deref(), password.as_deref()).await?;
            eprintln!("created user {}", user.name);
        }
        Command::Token(TokenCommand::Create { user, name, role }) => {
            let role = Role::parse(&role).unwrap_or(Role::Read);
            println!("{}", accounts::create_token(&state, &user, &name, role).await?);
        }
        Command::Org(OrgCommand::Create { name, owner }) => {
            accounts::create_org(&state, &name, &owner).await?;
            eprintln!("created organisation {name} with admin {owner}");
        }
        Command::Org(OrgCommand::AddMember { org, user, role }) => {
            let role = Role::parse(&role).unwrap_or(Role::Read);
            accounts::add_member(&state, &org, &user, role).await?;
            eprintln!("{user} is now {} in {org}", role.as_str());
        }
    }
    // What this command changed is seen at once by the replicas serving (read_cache.rs).
    state.cache.epoch.bump();
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
