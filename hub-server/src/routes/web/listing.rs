//! `/`, `/models`, `/datasets`, `/spaces`: repos the caller may see, with search, filters, sort
//! and pagination.

use super::session::Web;
use super::{date, page, Nav, PageResult};
use crate::app::AppState;
use crate::db::{RepoQuery, RepoRow, RepoSort};
use crate::error::ApiError;
use crate::extract::QueryPairs;
use crate::names::RepoType;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;

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
    /// The query's filters, shown back in the form.
    f: ListFilters,
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
pub async fn list(State(state): State<AppState>, web: Web, uri: Uri) -> PageResult {
    let repo_type = match uri.path() {
        "/datasets" => RepoType::Dataset,
        "/spaces" => RepoType::Space,
        _ => RepoType::Model,
    };
    let (caller, nav) = (&web.caller, &web.nav);
    let q = QueryPairs::parse(uri.query());
    let filters = ListFilters::parse(&q)?;
    let (rows, more) = state.db.list_repos(&filters.query(repo_type, caller.visible_namespaces())).await?;
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
    let page_no = filters.page_no;
    page(ListPage {
        nav: nav.clone(),
        heading: heading.into(),
        f: filters,
        tasks: TASKS.iter().map(|t| t.to_string()).collect(),
        repos: rows.iter().map(RepoCard::from_row).collect(),
        prev_url: (page_no > 0).then(|| link(page_no - 1)),
        next_url: more.then(|| link(page_no + 1)),
    })
}

/// What a listing's query asks for: search, filters (empty values count as absent; an author
/// that is not a valid name is dropped), sort and page.
struct ListFilters {
    search: Option<String>,
    author: Option<String>,
    pipeline_tag: Option<String>,
    library: Option<String>,
    license: Option<String>,
    tag: Option<String>,
    sort: String,
    page_no: i64,
}

impl ListFilters {
    fn parse(q: &QueryPairs) -> Result<ListFilters, ApiError> {
        let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_string);
        let (search, pipeline_tag, library, license, tag) =
            (get("search"), get("pipeline_tag"), get("library"), get("license"), get("tag"));
        let author = get("author").filter(|a| crate::names::validate_name("author", a).is_ok());
        let sort = get("sort").unwrap_or_else(|| "downloads".into());
        let page_no = q.number("p")?.unwrap_or(0) as i64;
        Ok(ListFilters { search, author, pipeline_tag, library, license, tag, sort, page_no })
    }

    /// The query for this page of `repo_type`'s repos, among those `visible_namespaces` allow.
    fn query(&self, repo_type: RepoType, visible_namespaces: Vec<String>) -> RepoQuery {
        let mut tags: Vec<String> = Vec::new();
        tags.extend(self.library.clone());
        tags.extend(self.license.as_ref().map(|l| format!("license:{l}")));
        tags.extend(self.tag.clone());
        RepoQuery {
            repo_type,
            search: self.search.clone(),
            author: self.author.clone(),
            tags,
            pipeline_tag: self.pipeline_tag.clone(),
            sort: match self.sort.as_str() {
                "likes" => RepoSort::Likes,
                "lastModified" => RepoSort::LastModified,
                _ => RepoSort::Downloads,
            },
            ascending: false,
            visible_namespaces,
            offset: self.page_no * PAGE,
            limit: PAGE,
        }
    }
}

impl RepoCard {
    fn from_row(r: &RepoRow) -> RepoCard {
        RepoCard {
            id: r.name.id(),
            url: format!("/{}", r.name.web_path()),
            private: r.private,
            pipeline_tag: r.pipeline_tag.clone(),
            updated: date(r.last_modified),
            downloads: r.downloads,
            likes: r.likes,
        }
    }
}
