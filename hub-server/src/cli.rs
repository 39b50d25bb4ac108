//! The command line: `serve`, `migrate`, `user`, `token`, `org`. Defined in the library so tests
//! can check that deployment files only set variables the server reads.

use crate::Settings;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;

/// A self-hostable, Hugging Face compatible model hub.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the hub's HTTP server (migrations run first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Delete stored LFS objects, xorbs and shards nothing reachable references, once older than
    /// the grace period (HUB_GC_GRACE_DAYS, at least 21).
    Gc {
        /// Print what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a git hook (git receive-pack calls this during pushes).
    #[command(hide = true)]
    GitHook { name: String },
    /// Run `git http-backend` for the hub that started it, and die with it.
    #[command(hide = true)]
    GitBackend,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Read a password for web login from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an access token for USER and print it (alone) on stdout; it is not shown again.
    Create {
        user: String,
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long, default_value = "write", value_parser = ["read", "write"])]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organisation with OWNER as its first admin.
    Create {
        name: String,
        #[arg(long)]
        owner: String,
    },
    /// Add USER to ORG (or change their role).
    AddMember {
        org: String,
        user: String,
        #[arg(long, default_value = "write", value_parser = ["read", "write", "admin"])]
        role: String,
    },
}

/// Every `HUB_*` environment variable the command line reads.
pub fn env_vars() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut out);
    out.sort();
    out.dedup();
    out
}
