//! `/{repo}`: the card (rendered, sanitised), its metadata, "use this model" snippets, the
//! safetensors summary and the inference widget, at `main`.

use super::session::Web;
use super::{group_digits, page, repo_view_for, Nav, PageResult, RepoView, WebRepo};
use crate::app::AppState;
use crate::browse;
use crate::browse::Entry;
use crate::card;
use crate::names::{RepoName, RepoType};
use crate::repos::find_readable;
use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;

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
pub async fn repo_page(State(state): State<AppState>, web: Web, WebRepo(repo): WebRepo, headers: HeaderMap) -> PageResult {
    let state = &state;
    let row = find_readable(state, &web.caller, &repo.name, &repo.uri).await?;
    let rev = "main".to_string();
    let readme = browse::readme(state, &row, &rev).await?;
    let snap = browse::snapshot(state, &row, &rev).await?;
    let view = repo_view_for(state, &web.caller, &row, &rev).await?;
    let readme = readme.unwrap_or_default();
    let (url, r) = (view.url.clone(), rev.clone());
    // Markdown rendering and YAML parsing are CPU work: off the async threads.
    let (card_html, metadata) = tokio::task::spawn_blocking(move || render_card_parts(&readme, &url, &r)).await?;
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    let mut per_file = Vec::new();
    for e in &snap.files {
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
        nav: web.nav,
        snippets: snippets(&state.base_url(&headers), &row.name),
        repo: view,
        tab: "card",
        card_html,
        metadata,
        safetensors,
        widget,
    })
}
