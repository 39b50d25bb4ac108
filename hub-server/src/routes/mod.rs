//! HTTP routes: extract, authorize, call the domain, map to a response.

mod commit;
mod inference;
mod info;
mod layers;
mod lfs;
mod misc;
mod range;
mod refs;
mod repo_paths;
mod repos;
pub mod web;
pub mod web_accounts;
mod web_repo_admin;
mod xet;

use crate::app::AppState;
use axum::routing::{get, post, put};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub fn router(state: AppState) -> Router {
    let repo = "/api/{t}/{ns}/{name}";
    Router::new()
        .route("/health", get(misc::health))
        .route("/static/style.css", get(web::stylesheet))
        .route("/static/widget.js", get(web::widget_script))
        .route("/static/revs.js", get(web::revs_script))
        .route("/", get(web_list))
        .route("/login", get(web_accounts::login_page).post(web_accounts::login))
        .route("/logout", post(web_accounts::logout))
        .route("/join", get(web_accounts::join_page).post(web_accounts::join))
        .route("/settings/account", get(web_accounts::account_page))
        .route("/settings/account/email", post(web_accounts::change_email))
        .route("/settings/account/password", post(web_accounts::change_password))
        .route("/settings/tokens", get(web_accounts::tokens_page).post(web_accounts::create_token))
        .route("/settings/tokens/{id}/revoke", post(web_accounts::revoke_token))
        .route("/new", get(web_accounts::new_repo_page).post(web_accounts::new_repo))
        .route("/models", get(web_list))
        .route("/datasets", get(web_list))
        .route("/spaces", get(web_list))
        .route("/models/{ns}/{name}", post(inference::infer))
        .route("/models/{ns}/{name}/pipeline/{task}", post(inference::infer_task))
        .route("/models/{ns}/{name}/info", get(inference::info))
        .route("/models/{ns}/{name}/health", get(inference::health))
        .route("/api/whoami-v2", get(misc::whoami))
        .route("/api/validate-yaml", post(misc::validate_yaml))
        .route("/api/agent-harnesses", get(misc::agent_harnesses))
        .route("/api/repos/create", post(repos::create))
        .route("/api/repos/delete", axum::routing::delete(repos::delete))
        .route("/api/repos/move", post(repos::rename))
        .route("/api/{t}", get(info::list))
        .route(repo, get(info::info))
        .route(&format!("{repo}/revision/{{rev}}"), get(info::info))
        .route(&format!("{repo}/auth-check"), get(info::auth_check))
        .route(&format!("{repo}/tree/{{rev}}"), get(info::tree))
        .route(&format!("{repo}/tree/{{rev}}/{{*path}}"), get(info::tree))
        .route(&format!("{repo}/paths-info/{{rev}}"), post(info::paths_info))
        .route(&format!("{repo}/refs"), get(refs::list))
        .route(&format!("{repo}/commits/{{rev}}"), get(refs::commits))
        .route(&format!("{repo}/branch/{{branch}}"), post(refs::create_branch).delete(refs::delete_branch))
        .route(&format!("{repo}/tag/{{rev}}"), post(refs::create_tag).delete(refs::delete_tag))
        .route(&format!("{repo}/super-squash/{{rev}}"), post(refs::super_squash))
        .route(&format!("{repo}/settings"), put(repos::settings))
        .route(&format!("{repo}/preupload/{{rev}}"), post(commit::preupload))
        .route(&format!("{repo}/xet-read-token/{{rev}}"), get(xet::read_token))
        .route(&format!("{repo}/xet-write-token/{{rev}}"), get(xet::write_token))
        .route(&format!("{repo}/commit/{{rev}}"), post(commit::commit))
        .route("/lfs/upload/{repo}/{oid}/{size}", put(lfs::put_object))
        .route("/lfs/multipart/{repo}/{upload}/{oid}/{size}/{chunk}/{part}", put(lfs::put_part).post(lfs::complete))
        .route("/lfs/objects/{repo}/{oid}", get(lfs::get_object))
        // hf_xet posts telemetry to the origin root, whatever the CAS URL's path.
        .route("/v1/telemetry", post(xet::telemetry))
        .nest("/xet", cas_router())
        .fallback(repo_paths::dispatch)
        .layer(axum::middleware::from_fn(layers::drain_refused))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(std::time::Duration::from_secs(state.settings.body_idle_timeout_secs)))
        .layer(axum::middleware::from_fn_with_state(state.clone(), layers::read_timeout))
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(layers::panic_response))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(axum::middleware::from_fn(layers::access_log))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
                }))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::map_response(layers::security_headers))
                .layer(web_accounts::session_layer(&state)),
        )
        .with_state(state)
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

/// The listing pages: `/` and `/models` list models.
async fn web_list(axum::extract::State(state): axum::extract::State<AppState>, req: axum::extract::Request) -> axum::response::Response {
    let uri = req.uri().clone();
    let repo_type = match uri.path() {
        "/datasets" => crate::names::RepoType::Dataset,
        "/spaces" => crate::names::RepoType::Space,
        _ => crate::names::RepoType::Model,
    };
    let session = req.extensions().get::<tower_sessions::Session>().cloned();
    let result = match web_accounts::context(&state, req.headers(), session.as_ref()).await {
        Ok((caller, nav)) => web::list(&state, &caller, &nav, repo_type, &uri).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(web::error_page)
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
