//! Git smart HTTP through `git http-backend` (as Gitea and cgit do): it speaks protocol v0/v1
//! and v2, gzip request bodies and chunked pushes. Request bodies stream into the CGI's stdin;
//! its stdout streams back.

use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub struct CgiRequest<'a> {
    /// The hub-server binary that starts `git http-backend` for us (`hub-server git-backend`).
    pub launcher: &'a Path,
    pub method: &'a str,
    /// `/<shard>/<id>.git/info/refs`, relative to the repos root.
    pub path_info: String,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_length: Option<&'a str>,
    /// The `Git-Protocol` header (`version=2`), passed through as GIT_PROTOCOL.
    pub git_protocol: Option<&'a str>,
    pub remote_user: Option<&'a str>,
    /// Extra environment for hooks.
    pub env: Vec<(&'static str, String)>,
    /// `-c` settings for git (e.g. core.hooksPath).
    pub config: Vec<(&'static str, String)>,
}

/// The environment variable through which the hub tells `git-backend` its process id.
const PARENT_ENV: &str = "HUB_GIT_BACKEND_PARENT";

/// Starts `git http-backend` through the launcher, which ties git's life to this process: a
/// replica killed mid-push must not leave a receive-pack behind that moves the ref later,
/// outside the repo's lock and without the hub recording the new head. The launcher is spawned
/// from an async worker thread, which lives as long as the process (the parent-death signal
/// follows the thread that spawned).
fn spawn(repos_root: &Path, req: &CgiRequest) -> ApiResult<Child> {
    let mut cmd = Command::new(req.launcher);
    cmd.arg("git-backend")
        .env(PARENT_ENV, std::process::id().to_string())
        .env("GIT_PROJECT_ROOT", repos_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &req.path_info)
        .env("QUERY_STRING", req.query)
        .env("REQUEST_METHOD", req.method)
        .env("CONTENT_TYPE", req.content_type.unwrap_or(""))
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("CONTENT_LENGTH") // set below when known; a chunked push streams to EOF
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(enc) = req.content_encoding {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(len) = req.content_length {
        cmd.env("CONTENT_LENGTH", len);
    }
    if let Some(p) = req.git_protocol {
        cmd.env("GIT_PROTOCOL", p);
    }
    if let Some(u) = req.remote_user {
        cmd.env("REMOTE_USER", u);
    }
    let mut config = vec![("http.receivepack", "true".to_string()), ("http.uploadpack", "true".to_string())];
    config.extend(req.config.iter().cloned());
    cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k).env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    for (k, v) in &req.env {
        cmd.env(k, v);
    }
    cmd.spawn().map_err(|e| ApiError::internal(format!("could not start git http-backend through {}: {e}", req.launcher.display())))
}

/// `hub-server git-backend`: becomes `git http-backend`, asking the kernel to send it SIGTERM
/// when the hub that started it dies. git's own handler passes the signal on to the
/// receive-pack or upload-pack it runs (and waits for them), so a push whose hub died stops
/// before it moves a ref. Returns only on failure, with the exit code.
pub fn exec_backend() -> i32 {
    use std::os::unix::process::CommandExt;
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getppid, set_parent_process_death_signal, Signal};
        if let Err(e) = set_parent_process_death_signal(Some(Signal::TERM)) {
            eprintln!("hub: cannot tie git to the hub's life: {e}");
            return 1;
        }
        // The hub may have died before the signal was asked for: then nothing would send it.
        let parent = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse::<i32>().ok());
        if getppid().map(|p| p.as_raw_nonzero().get()) != parent {
            eprintln!("hub: the hub that started git is gone");
            return 1;
        }
    }
    let error = std::process::Command::new("git").arg("http-backend").env_remove(PARENT_ENV).exec();
    eprintln!("hub: could not run git http-backend (is git installed?): {error}");
    127
}

/// Runs one smart-HTTP request. With `buffer_output` the whole CGI output is read and the
/// process awaited before answering (pushes: their report is small, and the caller acts on
/// the result); otherwise the output streams (fetches: packs can be large).
pub async fn run(repos_root: &Path, req: CgiRequest<'_>, body: Body, buffer_output: bool) -> ApiResult<Response> {
    let mut child = spawn(repos_root, &req)?;
    let mut stdin = child.stdin.take().ok_or_else(|| ApiError::internal("no stdin"))?;
    let stdout = child.stdout.take().ok_or_else(|| ApiError::internal("no stdout"))?;
    let mut stderr = child.stderr.take().ok_or_else(|| ApiError::internal("no stderr"))?;
    // Feed the request body; a broken pipe only means the backend stopped reading.
    let feeder = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = stdin.shutdown().await;
    });
    let logger = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        if !text.trim().is_empty() {
            tracing::warn!(stderr = %text.trim(), "git http-backend");
        }
    });
    let mut reader = BufReader::new(stdout);
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse::<u16>().ok()).unwrap_or(500);
            status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.push((n, v));
        }
    }
    let body = if buffer_output {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await?;
        let _ = feeder.await;
        let exit = child.wait().await?;
        let _ = logger.await;
        if !exit.success() && status == StatusCode::OK && out.is_empty() {
            return Err(ApiError::internal(format!("git http-backend failed: {exit}")));
        }
        Body::from(out)
    } else {
        tokio::spawn(async move {
            let _ = feeder.await;
            let _ = child.wait().await;
            let _ = logger.await;
        });
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (n, v) in headers {
        h.append(n, v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(resp)
}
