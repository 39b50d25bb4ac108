//! HTTP routes: extract, authorize, call the domain, map to a response. Every path is an axum
//! route: the JSON API under `/api`, the signed transfer URLs under `/lfs` and `/xet`, and each
//! repo's own URL (`/{ns}/{name}`, `/datasets/…`, `/spaces/…`) for its web pages, `resolve`,
//! git and Git LFS.

mod commit;
mod git_http;
mod inference;
mod info;
mod layers;
mod lfs_batch;
mod lfs_transfer;
mod misc;
mod range;
mod refs;
mod repos;
mod resolve;
pub mod web;
mod xet;

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub fn router(state: AppState) -> Router {
    // Browser sessions exist only where a browser is served (pages, forms, the widget's
    // inference calls): the API, resolve, git and transfers authenticate by token and skip the
    // cookie parsing and session bookkeeping on every request.
    let sessions = web::session::session_layer(&state);
    Router::new()
        .route("/health", get(misc::health))
        .merge(web_routes().layer(sessions.clone()))
        .merge(api_routes())
        .merge(transfer_routes())
        .merge(inference_routes().layer(sessions.clone()))
        // Each repo answers at its URL; datasets and spaces under their prefix.
        .merge(repo_routes(&sessions))
        .nest("/datasets", repo_routes(&sessions))
        .nest("/spaces", repo_routes(&sessions))
        .nest("/xet", cas_router())
        .route("/metrics", get(misc::metrics))
        // Every route above records its pattern for the access log and the metrics.
        .route_layer(axum::middleware::from_fn(layers::tag_route))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(layers::drain_refused))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(std::time::Duration::from_secs(state.settings.body_idle_timeout_secs)))
        .layer(axum::middleware::from_fn_with_state(state.clone(), layers::read_timeout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), layers::database_gate))
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(layers::panic_response))
                .layer(SetRequestIdLayer::x_request_id(layers::RequestIds::new()))
                .layer(axum::middleware::from_fn_with_state(state.clone(), layers::access_log))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
                }))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::map_response(layers::security_headers)),
        )
        .with_state(state)
}

/// The site's own pages: listings, accounts, static assets.
fn web_routes() -> Router<AppState> {
    use web::{account, listing, login, new_repo, profile, tokens};
    Router::new()
        .route("/static/style.css", get(web::stylesheet))
        .route("/static/widget.js", get(web::widget_script))
        .route("/static/revs.js", get(web::revs_script))
        .route("/", get(listing::list))
        .route("/models", get(listing::list))
        .route("/datasets", get(listing::list))
        .route("/spaces", get(listing::list))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/join", get(login::join_page).post(login::join))
        .route("/settings/account", get(account::account_page))
        .route("/settings/account/email", post(account::change_email))
        .route("/settings/account/password", post(account::change_password))
        .route("/settings/tokens", get(tokens::tokens_page).post(tokens::create_token))
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke_token))
        .route("/new", get(new_repo::new_repo_page).post(new_repo::new_repo))
        .route("/{name}", get(profile::profile))
}

/// The JSON API (`/api/…`) as the Hub's clients call it.
fn api_routes() -> Router<AppState> {
    let repo = "/api/{t}/{ns}/{name}";
    let at = |tail: &str| format!("{repo}{tail}");
    Router::new()
        .route("/api/whoami-v2", get(misc::whoami))
        .route("/api/validate-yaml", post(misc::validate_yaml))
        .route("/api/agent-harnesses", get(misc::agent_harnesses))
        .route("/api/repos/create", post(repos::create))
        .route("/api/repos/delete", axum::routing::delete(repos::delete))
        .route("/api/repos/move", post(repos::rename))
        .route("/api/{t}", get(info::list))
        .route(repo, get(info::info))
        .route(&at("/revision/{rev}"), get(info::info))
        .route(&at("/auth-check"), get(info::auth_check))
        .route(&at("/tree/{rev}"), get(info::tree))
        .route(&at("/tree/{rev}/{*path}"), get(info::tree))
        .route(&at("/paths-info/{rev}"), post(info::paths_info))
        .route(&at("/refs"), get(refs::list))
        .route(&at("/commits/{rev}"), get(refs::commits))
        .route(&at("/branch/{branch}"), post(refs::create_branch).delete(refs::delete_branch))
        .route(&at("/tag/{rev}"), post(refs::create_tag).delete(refs::delete_tag))
        .route(&at("/super-squash/{rev}"), post(refs::super_squash))
        .route(&at("/settings"), put(repos::settings))
        .route(&at("/preupload/{rev}"), post(commit::preupload))
        .route(&at("/xet-read-token/{rev}"), get(xet::read_token))
        .route(&at("/xet-write-token/{rev}"), get(xet::write_token))
        .route(&at("/commit/{rev}"), post(commit::commit))
}

/// Self-authenticating transfer URLs handed out by the LFS batch API, and Xet's telemetry.
fn transfer_routes() -> Router<AppState> {
    Router::new()
        .route("/lfs/upload/{repo}/{oid}/{size}", put(lfs_transfer::put_object))
        .route("/lfs/multipart/{repo}/{upload}/{oid}/{size}/{chunk}/{part}", put(lfs_transfer::put_part).post(lfs_transfer::complete))
        .route("/lfs/objects/{repo}/{oid}", get(lfs_transfer::get_object))
        // hf_xet posts telemetry to the origin root, whatever the CAS URL's path.
        .route("/v1/telemetry", post(xet::telemetry))
}

/// The Inference API, forwarded to the inference workers.
fn inference_routes() -> Router<AppState> {
    Router::new()
        .route("/models/{ns}/{name}", post(inference::infer))
        .route("/models/{ns}/{name}/pipeline/{task}", post(inference::infer_task))
        .route("/models/{ns}/{name}/info", get(inference::info))
        .route("/models/{ns}/{name}/health", get(inference::health))
}

/// Everything at a repo's URL: its pages, `resolve`, git smart HTTP and the Git LFS API (git
/// adds `.git` to the name, which the extractor drops).
fn repo_routes(sessions: &web::session::SessionLayer) -> Router<AppState> {
    use web::{files, history, repo_admin, repo_page, upload};
    let at = |tail: &str| format!("/{{ns}}/{{name}}{tail}");
    let pages = Router::new()
        .route("/{ns}/{name}", get(repo_page::repo_page))
        .route(&at("/tree/{rev}"), get(files::tree))
        .route(&at("/tree/{rev}/{*path}"), get(files::tree))
        .route(&at("/tree-select"), get(files::tree_select))
        .route(&at("/blob/{rev}/{*path}"), get(files::blob))
        .route(&at("/commits/{rev}"), get(history::commits))
        .route(&at("/commit/{sha}"), get(history::commit))
        .route(&at("/settings"), get(repo_admin::settings_page))
        .route(&at("/settings/{action}"), post(repo_admin::settings_action))
        .route(&at("/like"), post(repo_admin::like))
        // The upload form carries files (each checked as it streams in).
        .route(&at("/upload"), get(upload::upload_page).post(upload::upload).layer(DefaultBodyLimit::max(upload::MAX_UPLOAD_FORM)))
        .layer(sessions.clone());
    Router::new()
        .route(&at("/resolve/{rev}/{*path}"), get(resolve::resolve))
        .route(&at("/info/refs"), get(git_http::info_refs))
        .route(&at("/git-upload-pack"), post(git_http::upload_pack))
        .route(&at("/git-receive-pack"), post(git_http::receive_pack))
        .route(&at("/info/lfs/objects/batch"), post(lfs_batch::batch))
        .route(&at("/info/lfs/objects/verify"), post(lfs_batch::verify))
        .merge(pages)
}

/// No route: the API's JSON 404 (a repo-shaped API path is RepoNotFound), a page elsewhere.
async fn not_found(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs[0] == "api" {
        if segs.len() >= 3 && crate::names::repo_type_from_plural(segs[1]).is_some() {
            return ApiError::repo_not_found(true).into_response();
        }
        return ApiError::not_found(format!("no API route {path}")).into_response();
    }
    let e = ApiError::not_found(format!("no route {path}"));
    if method == Method::GET {
        web::error_page(e)
    } else {
        e.into_response()
    }
}

/// The CAS API of Xet, served under `{hub}/xet` (the `casUrl` the token routes hand out).
fn cas_router() -> Router<AppState> {
    Router::new()
        .route("/v1/xorbs/{prefix}/{hash}", post(xet::upload_xorb))
        .route("/v1/xorb-grants/{prefix}/{hash}", post(xet::not_offered))
        .route("/v1/shards", post(xet::upload_shard))
        .route("/v2/shards", post(xet::not_offered))
        .route("/v1/reconstructions/{hash}", get(xet::reconstruction_v1))
        .route("/v2/reconstructions/{hash}", get(xet::reconstruction_v2))
        .route("/v1/chunks/{prefix}/{hash}", get(xet::dedup))
        .route("/v1/xorb-ranges/{hash}", get(xet::xorb_range))
        .route("/v1/telemetry", post(xet::telemetry))
        .fallback(xet::not_offered)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the only form Python's parser accepts.
pub fn format_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&f).unwrap_or_default()
}

/// An absolute `Link: <url>; rel="next"` header value (clients need absolute URLs; commas
/// inside the URL are percent-encoded because hf-hub 1.0 splits the header on them).
pub fn next_link(base: &str, uri: &axum::http::Uri, key: &str, value: &str) -> String {
    let mut pairs: Vec<(String, String)> = crate::extract::QueryPairs::parse(uri.query()).0.into_iter().filter(|(k, _)| k != key).collect();
    pairs.push((key.to_string(), value.to_string()));
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("<{base}{}?{}>; rel=\"next\"", uri.path(), query.replace(',', "%2C"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_end_in_z_with_millis() {
        assert_eq!(super::format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn next_links_are_absolute_and_keep_parameters() {
        let uri: axum::http::Uri = "/api/models/a/b/tree/main?recursive=true&cursor=5&expand=a,b".parse().unwrap();
        let link = super::next_link("http://h:1", &uri, "cursor", "10");
        assert_eq!(link, "<http://h:1/api/models/a/b/tree/main?recursive=true&expand=a%2Cb&cursor=10>; rel=\"next\"");
    }
}
