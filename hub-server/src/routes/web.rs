//! The web UI: server-rendered pages (askama templates in `templates/`) over the same domain
//! functions and privacy rules as the API. A private repo is a 404 page to anyone who may not
//! see it.

use crate::app::AppState;
use crate::auth::Caller;
use crate::card;
use crate::db::{RepoQuery, RepoRow, RepoSort};
use crate::error::{ApiError, ErrorCode};
use crate::git::{self, Entry};
use crate::names::{RepoName, RepoType};
use crate::repos::find_readable;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// What the header shows: who is signed in, and the CSRF token its forms carry.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub user: Option<String>,
    pub csrf: String,
}

/// A page, or the HTML page of an error.
pub type PageResult = Result<Response, ApiError>;

pub(super) fn page(t: impl Template) -> PageResult {
    Ok(Html(t.render().map_err(ApiError::internal)?).into_response())
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Nav,
    status: String,
    message: String,
}

/// The HTML face of an API error: not-found kinds (and privacy refusals) are 404 pages.
pub fn error_page(e: ApiError) -> Response {
    let status = match e.code {
        Some(ErrorCode::RepoNotFound | ErrorCode::RevisionNotFound | ErrorCode::EntryNotFound) => StatusCode::NOT_FOUND,
        _ if e.status.is_redirection() => return e.into_response(),
        _ => e.status,
    };
    let message = if status == StatusCode::NOT_FOUND {
        "Nothing here: the page, repository, revision or file does not exist, or you may not see it.".to_string()
    } else {
        e.message.clone()
    };
    let body = ErrorPage { nav: Nav::default(), status: status.to_string(), message }.render().unwrap_or_default();
    (status, Html(body)).into_response()
}

/// The inference widget's script (the only script the UI has; pages work without it).
pub async fn widget_script() -> Response {
    let mut r = include_str!("../../../static/widget.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

pub async fn revs_script() -> Response {
    let mut r = include_str!("../../../static/revs.js").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

pub async fn stylesheet() -> Response {
    let mut r = include_str!("../../../static/style.css").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn date(ms: i64) -> String {
    super::format_time(ms)[..10].to_string()
}

// ---- listing ----

struct RepoCard {
    id: String,
    url: String,
    private: bool,
    pipeline_tag: Option<String>,
    updated: String,
    downloads: i64,
    likes: i64,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    nav: Nav,
    heading: String,
    search: Option<String>,
    author: Option<String>,
    pipeline_tag: Option<String>,
    library: Option<String>,
    license: Option<String>,
    tag: Option<String>,
    sort: String,
    tasks: Vec<String>,
    repos: Vec<RepoCard>,
    prev_url: Option<String>,
    next_url: Option<String>,
}

const TASKS: &[&str] = &[
    "text-classification",
    "token-classification",
    "fill-mask",
    "feature-extraction",
    "sentence-similarity",
    "text-generation",
    "translation",
    "summarization",
    "question-answering",
    "image-classification",
];
const PAGE: i64 = 30;

/// `/`, `/models`, `/datasets`, `/spaces`: search, filters, sort, pagination.
pub async fn list(state: &AppState, caller: &Caller, nav: &Nav, repo_type: RepoType, uri: &Uri) -> PageResult {
    let q = crate::extract::QueryPairs::parse(uri.query());
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    let (search, pipeline_tag, library, license, tag) = (get("search"), get("pipeline_tag"), get("library"), get("license"), get("tag"));
    let author = get("author").filter(|a| crate::names::validate_name("author", a).is_ok());
    let sort = get("sort").unwrap_or_else(|| "downloads".into());
    let page_no = q.number("p")?.unwrap_or(0) as i64;
    let mut tags: Vec<String> = Vec::new();
    tags.extend(library.clone());
    tags.extend(license.as_ref().map(|l| format!("license:{l}")));
    tags.extend(tag.clone());
    let query = RepoQuery {
        repo_type,
        search: search.clone(),
        author: author.clone(),
        tags,
        pipeline_tag: pipeline_tag.clone(),
        sort: match sort.as_str() {
            "likes" => RepoSort::Likes,
            "lastModified" => RepoSort::LastModified,
            _ => RepoSort::Downloads,
        },
        ascending: false,
        visible_namespaces: caller.visible_namespaces(),
        offset: page_no * PAGE,
        limit: PAGE,
    };
    let (rows, more) = state.db.list_repos(&query).await?;
    let link = |p: i64| {
        let pairs: Vec<(String, String)> =
            q.0.iter().filter(|(k, _)| k != "p").cloned().chain([("p".to_string(), p.to_string())]).collect();
        format!("{}?{}", uri.path(), form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish())
    };
    let heading = match repo_type {
        RepoType::Model => "Models",
        RepoType::Dataset => "Datasets",
        RepoType::Space => "Spaces",
    };
    page(ListPage {
        nav: nav.clone(),
        heading: heading.into(),
        search,
        author,
        pipeline_tag,
        library,
        license,
        tag,
        sort,
        tasks: TASKS.iter().map(|t| t.to_string()).collect(),
        repos: rows
            .iter()
            .map(|r| RepoCard {
                id: r.name.id(),
                url: format!("/{}", r.name.web_path()),
                private: r.private,
                pipeline_tag: r.pipeline_tag.clone(),
                updated: date(r.last_modified),
                downloads: r.downloads,
                likes: r.likes,
            })
            .collect(),
        prev_url: (page_no > 0).then(|| link(page_no - 1)),
        next_url: more.then(|| link(page_no + 1)),
    })
}

// ---- repo pages ----

pub(super) struct RepoView {
    pub(super) id: String,
    pub(super) owner: String,
    pub(super) name: String,
    pub(super) url: String,
    pub(super) private: bool,
    pub(super) likes: i64,
    pub(super) downloads: i64,
    pub(super) license: Option<String>,
    pub(super) tags: Vec<String>,
    pub(super) kind: &'static str,
    pub(super) kind_label: &'static str,
    pub(super) rev: String,
    pub(super) rev_enc: String,
    pub(super) liked: bool,
    pub(super) can_write: bool,
    pub(super) can_admin: bool,
}

/// The header of a repo's pages for this caller (likes and the tabs they may use).
pub(super) async fn repo_view_for(state: &AppState, caller: &Caller, row: &RepoRow, rev: &str) -> Result<RepoView, ApiError> {
    let mut view = repo_view(row, rev);
    if let Some(user) = &caller.user {
        view.liked = state.db.has_liked(user.account.id, &row.id).await?;
        let role = caller.role_in(&row.name.namespace);
        view.can_write = role.is_some_and(|r| r >= crate::db::Role::Write);
        view.can_admin = role.is_some_and(|r| r >= crate::db::Role::Admin);
    }
    Ok(view)
}

fn repo_view(row: &RepoRow, rev: &str) -> RepoView {
    let (kind, kind_label) = match row.name.repo_type {
        RepoType::Model => ("model", "Model"),
        RepoType::Dataset => ("dataset", "Dataset"),
        RepoType::Space => ("space", "Space"),
    };
    RepoView {
        id: row.name.id(),
        owner: row.name.namespace.clone(),
        name: row.name.name.clone(),
        url: format!("/{}", row.name.web_path()),
        private: row.private,
        likes: row.likes,
        downloads: row.downloads,
        license: row.card_data.as_ref().and_then(|c| c.get("license")).and_then(|l| l.as_str()).map(str::to_string),
        tags: row.tags.clone(),
        kind,
        kind_label,
        rev: rev.to_string(),
        rev_enc: enc(rev),
        liked: false,
        can_write: false,
        can_admin: false,
    }
}

struct SafetensorsView {
    total: String,
    dtypes: Vec<(String, String)>,
    files: Vec<(String, u64)>,
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPage {
    nav: Nav,
    repo: RepoView,
    tab: &'static str,
    card_html: String,
    metadata: Vec<(String, String)>,
    snippets: Vec<(String, String)>,
    safetensors: Option<SafetensorsView>,
    widget: Option<WidgetView>,
}

/// The model page's inference widget: which task, where it posts, the card's examples.
struct WidgetView {
    task: String,
    endpoint: String,
    /// JSON list of examples, escaped for a `<script type="application/json">` element.
    examples_json: String,
    example_titles: Vec<String>,
}

const WIDGET_TASKS: [&str; 6] =
    ["feature-extraction", "sentence-similarity", "text-classification", "token-classification", "fill-mask", "text-generation"];

/// Examples from the card's `widget:` list, else a default one for the task.
fn widget_view(state: &AppState, row: &crate::db::RepoRow) -> Option<WidgetView> {
    if !state.inference.enabled() || row.name.repo_type != RepoType::Model {
        return None;
    }
    let task = row.pipeline_tag.clone().filter(|t| WIDGET_TASKS.contains(&t.as_str()))?;
    let mut examples: Vec<serde_json::Value> = row
        .card_data
        .as_ref()
        .and_then(|c| c.get("widget"))
        .and_then(|w| w.as_array())
        .map(|items| items.iter().filter(|i| i.get("text").is_some() || i.get("source_sentence").is_some()).cloned().collect())
        .unwrap_or_default();
    if examples.is_empty() {
        examples.push(match task.as_str() {
            "sentence-similarity" => serde_json::json!({ "source_sentence": "That is a happy person", "sentences": ["That is a happy dog", "That is a very happy person", "Today is a sunny day"] }),
            "fill-mask" => serde_json::json!({ "text": "Paris is the [MASK] of France." }),
            "token-classification" => serde_json::json!({ "text": "My name is Wolfgang and I live in Berlin" }),
            "text-generation" => serde_json::json!({ "text": "Once upon a time," }),
            "text-classification" => serde_json::json!({ "text": "I like you. I love you" }),
            "summarization" => serde_json::json!({ "text": "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest structure in Paris." }),
            "translation" => serde_json::json!({ "text": "My name is Wolfgang and I live in Berlin" }),
            _ => serde_json::json!({ "text": "The answer to the universe is" }),
        });
    }
    let example_titles = examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.get("example_title")
                .and_then(|t| t.as_str())
                .or_else(|| e.get("text").and_then(|t| t.as_str()))
                .or_else(|| e.get("source_sentence").and_then(|t| t.as_str()))
                .map(|t| t.chars().take(60).collect())
                .unwrap_or_else(|| format!("Example {}", i + 1))
        })
        .collect();
    // `<` escaped so card text can't close the script element.
    let examples_json = serde_json::to_string(&examples).ok()?.replace('<', "\\u003c");
    Some(WidgetView { endpoint: format!("/models/{}/{}", row.name.namespace, row.name.name), task, examples_json, example_titles })
}

fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn snippets(base: &str, name: &RepoName) -> Vec<(String, String)> {
    let id = name.id();
    let mut out = Vec::new();
    let repo_type = match name.repo_type {
        RepoType::Model => String::new(),
        t => format!(", repo_type=\"{}\"", t.as_str()),
    };
    out.push((
        "huggingface_hub".to_string(),
        format!(
            "# export HF_ENDPOINT={base}\nfrom huggingface_hub import snapshot_download\npath = snapshot_download(\"{id}\"{repo_type})"
        ),
    ));
    if name.repo_type == RepoType::Model {
        out.push((
            "transformers".to_string(),
            format!("# export HF_ENDPOINT={base}\nfrom transformers import AutoModel, AutoTokenizer\nmodel = AutoModel.from_pretrained(\"{id}\")\ntokenizer = AutoTokenizer.from_pretrained(\"{id}\")"),
        ));
        out.push((
            "hub-client (Rust)".to_string(),
            format!("// HF_ENDPOINT={base}\nlet hub = hub_client::HubClient::from_env()?;\nlet dir = hub.model(\"{id}\").from_pretrained().await?;"),
        ));
    }
    out.push(("git".to_string(), format!("git lfs install\ngit clone {base}/{}", name.web_path())));
    out
}

/// The card's body as HTML and its metadata as (key, shown value) pairs.
fn render_card_parts(readme: &str, url: &str, rev: &str) -> (String, Vec<(String, String)>) {
    let body = match card::front_matter(readme) {
        Some(fm) => {
            let start = readme.find(fm).unwrap_or(0) + fm.len();
            readme[start..].trim_start_matches("---").trim_start_matches(['\r', '\n']).to_string()
        }
        None => readme.to_string(),
    };
    let card_html = if readme.is_empty() { String::new() } else { crate::markdown::render_card(&body, url, rev) };
    let metadata = card::parse_card_data(readme)
        .ok()
        .flatten()
        .and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| {
                    let shown = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Array(items) => items
                            .iter()
                            .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => other.to_string(),
                    };
                    (k, shown)
                })
                .collect()
        })
        .unwrap_or_default();
    (card_html, metadata)
}

/// `/{repo}`: the card, metadata, snippets and safetensors summary at `main`.
pub async fn repo_page(state: &AppState, caller: &Caller, nav: &Nav, name: &RepoName, uri: &Uri, base: &str) -> PageResult {
    let row = find_readable(state, caller, name, uri).await?;
    let rev = "main".to_string();
    let r = rev.clone();
    let (readme, files) = state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &r).ok_or_else(|| ApiError::revision_not_found(&r))?;
            let readme = git::read_file(g, commit, "README.md")?.map(|b| String::from_utf8_lossy(&b).into_owned());
            Ok((readme, git::all_files(g, commit)?))
        })
        .await?;
    let view = repo_view_for(state, caller, &row, &rev).await?;
    let readme = readme.unwrap_or_default();
    let (url, r) = (view.url.clone(), rev.clone());
    // Markdown rendering and YAML parsing are CPU work: off the async threads.
    let (card_html, metadata) = tokio::task::spawn_blocking(move || render_card_parts(&readme, &url, &r)).await?;
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    let mut per_file = Vec::new();
    for e in &files {
        let Entry::File { path, lfs: Some((p, _)), .. } = e else { continue };
        if !path.ends_with(".safetensors") {
            continue;
        }
        let Some(obj) = crate::content::held(state, &row.id, &p.oid).await? else { continue };
        if let Some(summary) = crate::safetensors::summary(state, &obj).await? {
            for (d, n) in summary.parameters {
                *totals.entry(d).or_default() += n;
            }
            per_file.push((path.clone(), summary.tensors));
        }
    }
    let safetensors = (!per_file.is_empty()).then(|| SafetensorsView {
        total: group_digits(totals.values().sum()),
        dtypes: totals.iter().map(|(d, n)| (d.clone(), group_digits(*n))).collect(),
        files: per_file,
    });
    let widget = widget_view(state, &row);
    page(RepoPage {
        nav: nav.clone(),
        snippets: snippets(base, &row.name),
        repo: view,
        tab: "card",
        card_html,
        metadata,
        safetensors,
        widget,
    })
}

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

/// `/{repo}/tree/{rev}/{path}`: one directory at any branch, tag or commit.
pub async fn tree(state: &AppState, caller: &Caller, nav: &Nav, name: &RepoName, uri: &Uri, rev: &str, dir: &str) -> PageResult {
    let row = find_readable(state, caller, name, uri).await?;
    let (r, d) = (rev.to_string(), dir.trim_matches('/').to_string());
    if !d.is_empty() {
        crate::names::validate_repo_path(&d)?;
    }
    let page_no = crate::extract::QueryPairs::parse(uri.query()).number("p")?.unwrap_or(0) as usize;
    let (entries, commits, refs, more) = state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &r).ok_or_else(|| ApiError::revision_not_found(&r))?;
            let tree = match git::entry_at(g, commit, &d)? {
                Some(Entry::Dir { tree, .. }) => tree,
                _ => return Err(ApiError::entry_not_found(&d, &commit.to_string())),
            };
            let mut entries = Vec::new();
            git::list_dir(g, tree, &d, false, &mut entries)?;
            entries.sort_by_key(|e| (!matches!(e, Entry::Dir { .. }), e.path().to_string()));
            // One page at a time: each entry's last commit is looked up.
            let more = entries.len() > (page_no + 1) * TREE_PAGE;
            let entries: Vec<Entry> = entries.into_iter().skip(page_no * TREE_PAGE).take(TREE_PAGE).collect();
            let paths: Vec<String> = entries.iter().map(|e| e.path().to_string()).collect();
            let commits = git::last_commits(g, commit, &paths)?;
            let refs: Vec<String> = git::branches(g)?.into_iter().chain(git::tags(g)?).map(|r| r.name).collect();
            Ok((entries, commits, refs, more))
        })
        .await?;
    let view = repo_view_for(state, caller, &row, rev).await?;
    let mut crumbs = Vec::new();
    let mut acc = String::new();
    for seg in dir.split('/').filter(|s| !s.is_empty()) {
        acc = if acc.is_empty() { seg.to_string() } else { format!("{acc}/{seg}") };
        crumbs.push((seg.to_string(), format!("{}/tree/{}/{}", view.url, view.rev_enc, acc)));
    }
    let entries = entries
        .iter()
        .zip(&commits)
        .map(|(e, c)| {
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
                commit: c.as_ref().map(|c| format!("{} · {}", c.title, date(c.time_ms))).unwrap_or_default(),
            }
        })
        .collect();
    let mut refs = refs;
    if !refs.contains(&rev.to_string()) {
        refs.insert(0, rev.to_string());
    }
    let here = uri.path().to_string();
    let prev = (page_no > 0).then(|| format!("{here}?p={}", page_no - 1));
    let next = more.then(|| format!("{here}?p={}", page_no + 1));
    page(TreePage { nav: nav.clone(), repo: view, tab: "files", path: dir.to_string(), refs, crumbs, entries, prev, next })
}

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

/// `/{repo}/blob/{rev}/{path}`: one file, as text when it is text.
pub async fn blob(state: &AppState, caller: &Caller, nav: &Nav, name: &RepoName, uri: &Uri, rev: &str, path: &str) -> PageResult {
    let row = find_readable(state, caller, name, uri).await?;
    crate::names::validate_repo_path(path)?;
    let (r, p) = (rev.to_string(), path.to_string());
    let (size, lfs, content) = state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &r).ok_or_else(|| ApiError::revision_not_found(&r))?;
            match git::entry_at(g, commit, &p)? {
                Some(Entry::File { blob, size, lfs, .. }) => {
                    let content =
                        (lfs.is_none() && size <= MAX_SHOWN).then(|| g.find_blob(blob).map(|b| b.content().to_vec())).transpose()?;
                    Ok((size, lfs.is_some(), content))
                }
                _ => Err(ApiError::entry_not_found(&p, &commit.to_string())),
            }
        })
        .await?;
    let view = repo_view_for(state, caller, &row, rev).await?;
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
        "This file is stored with Git LFS: download it to see its content.".to_string()
    } else if size > MAX_SHOWN {
        "This file is too large to show here.".to_string()
    } else {
        "Binary file not shown.".to_string()
    };
    let raw_url = format!("{}/resolve/{}/{}", view.url, view.rev_enc, path);
    page(FilePage {
        nav: nav.clone(),
        download_url: format!("{raw_url}?download=true"),
        raw_url,
        repo: view,
        tab: "files",
        path: path.to_string(),
        size: human_size(size),
        lfs,
        text,
        highlighted,
        notice,
    })
}

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

/// `/{repo}/commits/{rev}`: history, newest first, 30 a page.
pub async fn commits(state: &AppState, caller: &Caller, nav: &Nav, name: &RepoName, uri: &Uri, rev: &str) -> PageResult {
    let row = find_readable(state, caller, name, uri).await?;
    let page_no = crate::extract::QueryPairs::parse(uri.query()).number("p")?.unwrap_or(0) as usize;
    let r = rev.to_string();
    let (log, total) = state
        .with_git(&row.id, move |g| {
            let start = git::resolve_revision(g, &r).ok_or_else(|| ApiError::revision_not_found(&r))?;
            Ok(git::log(g, start, page_no * PAGE as usize, PAGE as usize)?)
        })
        .await?;
    let view = repo_view_for(state, caller, &row, rev).await?;
    let link = |p: usize| format!("{}/commits/{}?p={p}", view.url, view.rev_enc);
    page(CommitsPage {
        nav: nav.clone(),
        prev_url: (page_no > 0).then(|| link(page_no - 1)),
        next_url: ((page_no + 1) * (PAGE as usize) < total).then(|| link(page_no + 1)),
        commits: log
            .into_iter()
            .map(|c| CommitRow {
                short: c.id[..8].to_string(),
                id: c.id,
                title: c.title,
                author: c.author,
                date: super::format_time(c.time_ms)[..16].replace('T', " "),
            })
            .collect(),
        repo: view,
        tab: "history",
    })
}

struct FileDiff {
    path: String,
    status: String,
    lines: Vec<(&'static str, String)>,
    note: String,
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

/// `/{repo}/commit/{sha}`: a commit and the diff of its text files.
pub async fn commit(state: &AppState, caller: &Caller, nav: &Nav, name: &RepoName, uri: &Uri, sha: &str) -> PageResult {
    let row = find_readable(state, caller, name, uri).await?;
    let s = sha.to_string();
    let (info, files) = state
        .with_git(&row.id, move |g| {
            let oid = git::resolve_revision(g, &s).ok_or_else(|| ApiError::revision_not_found(&s))?;
            let c = g.find_commit(oid)?;
            let info = git::commit_info(&c);
            let parent_tree = c.parent(0).ok().map(|p| p.tree()).transpose()?;
            let diff = g.diff_tree_to_tree(parent_tree.as_ref(), Some(&c.tree()?), None)?;
            let mut files = Vec::new();
            for (i, delta) in diff.deltas().enumerate() {
                let path =
                    delta.new_file().path().or(delta.old_file().path()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                let status = format!("{:?}", delta.status()).to_lowercase();
                let mut lines = Vec::new();
                let mut note = String::new();
                match git2::Patch::from_diff(&diff, i)? {
                    Some(patch) if !delta.flags().is_binary() && patch.size(false, false, false) < 512 * 1024 => {
                        for h in 0..patch.num_hunks() {
                            let (hunk, n) = patch.hunk(h)?;
                            lines.push(("hunk", String::from_utf8_lossy(hunk.header()).trim_end().to_string()));
                            for l in 0..n {
                                let line = patch.line_in_hunk(h, l)?;
                                let class = match line.origin() {
                                    '+' => "add",
                                    '-' => "del",
                                    _ => "ctx",
                                };
                                let text = String::from_utf8_lossy(line.content()).trim_end_matches('\n').to_string();
                                lines.push((class, format!("{}{text}", line.origin())));
                            }
                        }
                    }
                    _ => note = "Binary or large file: no diff shown.".to_string(),
                }
                if lines.is_empty() && note.is_empty() {
                    note = "No textual change.".to_string();
                }
                files.push(FileDiff { path, status, lines, note });
            }
            Ok((info, files))
        })
        .await?;
    let body = info.message.split_once('\n').map(|(_, b)| b.trim().to_string()).unwrap_or_default();
    page(CommitPage {
        nav: nav.clone(),
        repo: repo_view_for(state, caller, &row, "main").await?,
        tab: "history",
        date: super::format_time(info.time_ms)[..16].replace('T', " "),
        id: info.id,
        title: info.title,
        body,
        author: info.author,
        parents: info.parents,
        files,
    })
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    nav: Nav,
    name: String,
    fullname: Option<String>,
    is_org: bool,
    members: Vec<(String, String)>,
    orgs: Vec<String>,
    /// (url, id, kind · updated, private)
    repos: Vec<(String, String, String, bool)>,
}

/// `/{name}`: a user's or an organisation's page, with the repos the caller may see.
pub async fn profile(state: &AppState, caller: &Caller, nav: &Nav, name: &str) -> PageResult {
    let account = state.db.find_account(name).await?.ok_or_else(|| ApiError::not_found("no such user or organisation"))?;
    let mut repos = Vec::new();
    for repo_type in [RepoType::Model, RepoType::Dataset, RepoType::Space] {
        let query = RepoQuery {
            repo_type,
            search: None,
            author: Some(account.name.clone()),
            tags: Vec::new(),
            pipeline_tag: None,
            sort: RepoSort::LastModified,
            ascending: false,
            visible_namespaces: caller.visible_namespaces(),
            offset: 0,
            limit: 200,
        };
        for r in state.db.list_repos(&query).await?.0 {
            repos.push((
                format!("/{}", r.name.web_path()),
                r.name.id(),
                format!("{} · updated {}", repo_type.as_str(), date(r.last_modified)),
                r.private,
            ));
        }
    }
    let members = if account.is_org { state.db.members_of(account.id).await? } else { Vec::new() };
    let orgs = if account.is_org { Vec::new() } else { state.db.orgs_of(account.id).await?.into_iter().map(|(o, _)| o).collect() };
    page(ProfilePage { nav: nav.clone(), name: account.name, fullname: account.fullname, is_org: account.is_org, members, orgs, repos })
}
