//! History: `/{repo}/commits/{rev}` (30 a page, newest first) and one commit with its diff
//! (`/{repo}/commit/{sha}`).

use super::session::Web;
use super::{date_time, page, repo_view_for, Nav, PageResult, RepoView, WebRepo};
use crate::app::AppState;
use crate::browse::{self, FileDiff};
use crate::extract::QueryPairs;
use crate::repos::find_readable;
use askama::Template;
use axum::extract::State;

const PAGE: usize = 30;

struct CommitRow {
    id: String,
    short: String,
    title: String,
    author: String,
    date: String,
}

#[derive(Template)]
#[template(path = "commits.html")]
struct CommitsPage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    commits: Vec<CommitRow>,
    prev_url: Option<String>,
    next_url: Option<String>,
}

#[derive(Template)]
#[template(path = "commit.html")]
struct CommitPage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    id: String,
    title: String,
    body: String,
    author: String,
    date: String,
    parents: Vec<String>,
    files: Vec<FileDiff>,
}

/// `/{repo}/commits/{rev}`.
pub async fn commits(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo, q: QueryPairs) -> PageResult {
    let row = find_readable(&state, &web.caller, &repo.name, &repo.uri).await?;
    let rev = repo.param("rev");
    let page_no = q.number("p")?.unwrap_or(0) as usize;
    let (log, total) = browse::history(&state, &row, rev, page_no * PAGE, PAGE).await?;
    let view = repo_view_for(&state, &web.caller, &row, rev).await?;
    let link = |p: usize| format!("{}/commits/{}?p={p}", view.url, view.rev_enc);
    page(CommitsPage {
        nav: web.nav,
        prev_url: (page_no > 0).then(|| link(page_no - 1)),
        next_url: ((page_no + 1) * PAGE < total).then(|| link(page_no + 1)),
        commits: log
            .into_iter()
            .map(|c| CommitRow { short: c.id[..8].to_string(), id: c.id, title: c.title, author: c.author, date: date_time(c.time_ms) })
            .collect(),
        repo: view,
        tab: "history",
    })
}

/// `/{repo}/commit/{sha}`.
pub async fn commit(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo) -> PageResult {
    let row = find_readable(&state, &web.caller, &repo.name, &repo.uri).await?;
    let (info, files) = browse::commit_diff(&state, &row, repo.param("sha")).await?;
    let body = info.message.split_once('\n').map(|(_, b)| b.trim().to_string()).unwrap_or_default();
    page(CommitPage {
        nav: web.nav,
        repo: repo_view_for(&state, &web.caller, &row, "main").await?,
        tab: "history",
        date: date_time(info.time_ms),
        id: info.id,
        title: info.title,
        body,
        author: info.author,
        parents: info.parents,
        files,
    })
}
