//! Files at any revision: a directory page (`/{repo}/tree/{rev}/{dir}`, 100 entries a page,
//! each with its last commit), the revision selector's landing route, and one file
//! (`/{repo}/blob/{rev}/{path}`, highlighted when it is text).

use super::session::Web;
use super::{date, enc, human_size, page, repo_view_for, Nav, PageResult, RepoView, WebRepo};
use crate::app::AppState;
use crate::browse::Entry;
use crate::browse::{self, DirQuery};
use crate::extract::QueryPairs;
use crate::names::validate_repo_path;
use crate::repos::find_readable;
use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

struct EntryView {
    name: String,
    url: String,
    dir: bool,
    lfs: bool,
    size: String,
    commit: String,
}

#[derive(Template)]
#[template(path = "tree.html")]
struct TreePage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    path: String,
    refs: Vec<String>,
    crumbs: Vec<(String, String)>,
    entries: Vec<EntryView>,
    /// Links to the neighbouring pages of a long directory.
    prev: Option<String>,
    next: Option<String>,
}

/// Entries per page of a directory (each gets its last commit).
const TREE_PAGE: usize = 100;

#[derive(Template)]
#[template(path = "file.html")]
struct FilePage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    path: String,
    size: String,
    lfs: bool,
    raw_url: String,
    download_url: String,
    text: Option<String>,
    highlighted: Option<String>,
    notice: String,
}

/// Text files up to this size are shown inline.
const MAX_SHOWN: u64 = 1024 * 1024;

/// `/{repo}/tree/{rev}[/{dir}]`.
pub async fn tree(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo, q: QueryPairs) -> PageResult {
    let row = find_readable(&state, &web.caller, &repo.name, &repo.uri).await?;
    let (rev, dir) = (repo.param("rev"), repo.param("path").trim_matches('/'));
    if !dir.is_empty() {
        validate_repo_path(dir)?;
    }
    let page_no = q.number("p")?.unwrap_or(0) as usize;
    let query = DirQuery { recursive: false, offset: page_no * TREE_PAGE, limit: TREE_PAGE, with_commits: true, dirs_first: true };
    let listing = browse::dir_page(&state, &row, rev, dir, query).await?;
    let refs = browse::refs(&state, &row).await?;
    let view = repo_view_for(&state, &web.caller, &row, rev).await?;
    let mut crumbs = Vec::new();
    let mut acc = String::new();
    for seg in dir.split('/').filter(|s| !s.is_empty()) {
        acc = if acc.is_empty() { seg.to_string() } else { format!("{acc}/{seg}") };
        crumbs.push((seg.to_string(), format!("{}/tree/{}/{}", view.url, view.rev_enc, acc)));
    }
    let entries = listing.entries.iter().zip(&listing.last_commits).map(|(e, c)| entry_view(&view, e, c.as_ref())).collect();
    let mut refs: Vec<String> = refs.branches.into_iter().chain(refs.tags).map(|r| r.name).collect();
    if !refs.iter().any(|r| r == rev) {
        refs.insert(0, rev.to_string());
    }
    let here = repo.uri.path().to_string();
    let prev = (page_no > 0).then(|| format!("{here}?p={}", page_no - 1));
    let next = listing.more.then(|| format!("{here}?p={}", page_no + 1));
    page(TreePage { nav: web.nav, repo: view, tab: "files", path: dir.to_string(), refs, crumbs, entries, prev, next })
}

fn entry_view(view: &RepoView, e: &Entry, last: Option<&crate::browse::CommitInfo>) -> EntryView {
    let name = e.path().rsplit('/').next().unwrap_or_default().to_string();
    let (dir, size, lfs) = match e {
        Entry::Dir { .. } => (true, String::new(), false),
        Entry::File { size, lfs, .. } => (false, human_size(*size), lfs.is_some()),
    };
    let kind = if dir { "tree" } else { "blob" };
    EntryView {
        url: format!("{}/{kind}/{}/{}", view.url, view.rev_enc, e.path()),
        name,
        dir,
        lfs,
        size,
        commit: last.map(|c| format!("{} · {}", c.title, date(c.time_ms))).unwrap_or_default(),
    }
}

/// `/{repo}/tree-select?rev=…&path=…`: the revision selector without script (a GET form).
pub async fn tree_select(WebRepo(repo): WebRepo, q: QueryPairs) -> PageResult {
    let rev = q.get("rev").unwrap_or("main");
    let dir = q.get("path").unwrap_or("").trim_matches('/');
    if !dir.is_empty() {
        validate_repo_path(dir)?;
    }
    // Each segment encoded: the Location header carries no raw control characters.
    let dir: Vec<String> = dir.split('/').map(enc).collect();
    let to = format!("/{}/tree/{}/{}", repo.name.web_path(), enc(rev), dir.join("/"));
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}

/// `/{repo}/blob/{rev}/{path}`: one file, as text when it is text.
pub async fn blob(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo) -> PageResult {
    let row = find_readable(&state, &web.caller, &repo.name, &repo.uri).await?;
    let (rev, path) = (repo.param("rev"), repo.param("path"));
    validate_repo_path(path)?;
    let (size, lfs, content) = browse::file_text(&state, &row, rev, path, MAX_SHOWN).await?;
    let view = repo_view_for(&state, &web.caller, &row, rev).await?;
    let text = content.and_then(|c| if c.contains(&0) { None } else { String::from_utf8(c).ok() });
    // Highlighting is CPU work (syntect's regexes): off the async threads.
    let highlighted = match text.clone() {
        Some(t) => {
            let p = path.to_string();
            tokio::task::spawn_blocking(move || crate::markdown::highlight(&p, &t)).await?
        }
        None => None,
    };
    let notice = if lfs {
        "This file is stored with Git LFS: download it to see its content."
    } else if size > MAX_SHOWN {
        "This file is too large to show here."
    } else {
        "Binary file not shown."
    };
    let raw_url = format!("{}/resolve/{}/{}", view.url, view.rev_enc, path);
    page(FilePage {
        nav: web.nav,
        download_url: format!("{raw_url}?download=true"),
        raw_url,
        repo: view,
        tab: "files",
        path: path.to_string(),
        size: human_size(size),
        lfs,
        text,
        highlighted,
        notice: notice.to_string(),
    })
}
