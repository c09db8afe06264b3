//! The HTTP API (axum): `/v1/ask` (JSON or server-sent events), `/v1/sql` (JSON,
//! CSV or Arrow IPC), datasets, conversations, feedback, the cache, tokens and the
//! audit trail, `/healthz` and `/metrics`, and the chat page's static bundle
//! (`web_dir`) at `/`. Handlers are thin: they parse, call the engine with the
//! request's [`Principal`] and shape the response. One middleware resolves the
//! principal from the bearer token (and counts the request against the token's
//! requests per minute) before any `/v1` handler or `/metrics` runs; `/healthz` and
//! the page are open. Request bodies are size-limited and read by one extractor
//! ([`ApiJson`]) so that every bad input gets the JSON error. The request and
//! response types are `tag-types`', shared with the page.

mod error;

use std::{convert::Infallible, sync::Arc};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Extension, FromRequest, MatchedPath, Path, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Response,
    },
    handler::HandlerWithoutStateExt,
    routing::{get, post},
    Json, Router,
};
use futures::Stream;
use serde::de::DeserializeOwned;
use serde_json::json;
use tag_types::{
    ConversationDetail, DatasetDetail, DatasetSummary, ExampleStatus, FeedbackRequest, Me, RenameRequest, SaveExampleRequest, SqlRequest,
    SqlResponse,
};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_http::{compression::CompressionLayer, services::ServeDir, trace::TraceLayer};

pub use error::ApiError;
use error::ErrorCode;

use crate::{
    ask::{self, AskRequest, Event, Events},
    auth::{Limits, Principal, Refusal, Role},
    catalog::Listing,
    engine::Engine,
    error::Error,
    execution::{values::cell_text, QueryOptions},
    query::{self, SqlFormat, SqlResult},
    sql,
    state::audit::AuditFilter,
};

pub type AppState = Arc<Engine>;

/// The router, testable without a socket.
pub fn app(engine: AppState) -> Router {
    let body_limit = engine.config.max_body_bytes;
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/me", get(me))
        .route("/v1/audit", get(audit))
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/v1/ask", post(ask_handler))
        .route("/v1/sql", post(sql_handler))
        .route("/v1/datasets", get(list_datasets))
        .route("/v1/datasets/{name}", get(get_dataset))
        .route("/v1/datasets/{name}/refresh", post(refresh_dataset))
        .route("/v1/datasets/{name}/examples", get(list_examples).post(save_example))
        .route("/v1/datasets/{name}/examples/{id}", axum::routing::delete(delete_example))
        .route("/v1/datasets/{name}/examples/{id}/approve", post(approve_example))
        .route("/v1/conversations", get(list_conversations))
        .route("/v1/cache", get(cache_info).delete(clear_cache))
        .route(
            "/v1/conversations/{id}",
            get(get_conversation).patch(rename_conversation).delete(delete_conversation),
        )
        .route("/v1/feedback", get(list_feedback).post(add_feedback))
        // The MCP server, for agents, behind the same token check.
        .nest_service("/mcp", crate::mcp::service(engine.clone()))
        .layer(middleware::from_fn_with_state(engine.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .route("/", get(index_page))
        .fallback(static_file)
        .layer(middleware::from_fn_with_state(body_limit, refuse_large_bodies))
        .layer(middleware::from_fn_with_state(engine.clone(), count_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(engine)
}

/// Bodies read and thrown away before a 413, so a client still sending gets the
/// JSON error instead of a reset connection. Larger bodies are cut off.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Refuses a body whose declared length is over the limit with the JSON 413 error,
/// after reading (up to [`DRAIN_LIMIT`]) what the client sends.
async fn refuse_large_bodies(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(length) if length > limit => {
            let _ = axum::body::to_bytes(request.into_body(), DRAIN_LIMIT).await;
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is {length} bytes; the limit is {limit} (max_body_bytes)"),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

async fn count_requests(State(engine): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let response = next.run(request).await;
    engine.metrics.http_request(&method, &route, response.status().as_u16());
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        engine.metrics.error(code);
    }
    response
}

/// Resolves the request's principal from its bearer token (once; handlers take it
/// as an `Extension`) and counts the request against the token's requests per
/// minute. An unknown, wrong, revoked or expired token all get the same answer.
async fn authenticate(State(engine): State<AppState>, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let principal = match engine.auth.resolve(header) {
        Ok(principal) => principal,
        Err(refusal) => {
            let message = match refusal {
                Refusal::Missing => {
                    "this server requires an access token: send it as Authorization: Bearer <token> \
(an admin creates one with `tag-server token create`)"
                }
                Refusal::Malformed => "send the access token as Authorization: Bearer <token>",
                Refusal::Invalid => "the access token is not valid: unknown, revoked or expired",
            };
            return ApiError::from(Error::Unauthorized(message.into())).into_response();
        }
    };
    if let Err(e) = engine.budgets.admit(&principal) {
        return ApiError::from(e).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The chat page, or how to build it when the bundle is missing.
async fn index_page(State(engine): State<AppState>) -> Response {
    let index = engine.config.web_dir.join("index.html");
    match tokio::fs::read(&index).await {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], html).into_response(),
        Err(_) => {
            let dir = engine.config.web_dir.display().to_string();
            let page = format!(
                "<!doctype html><meta charset=utf-8><title>tag-server</title><h1>tag-server is running</h1>\
                 <p>The chat page is not built: {} has no index.html. Build it with <code>.ci/web</code> \
                 (or start the server with <code>./serve</code>, which does), or point <code>TAG_WEB_DIR</code> at a built bundle.</p>\
                 <p>The HTTP API works without it: see <a href=\"/healthz\">/healthz</a> and <a href=\"/v1/datasets\">/v1/datasets</a>.</p>",
                html_escape(&dir)
            );
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A file of the page's bundle (GET or HEAD), else the JSON 404.
async fn static_file(State(engine): State<AppState>, request: Request) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return not_found().await.into_response();
    }
    let files = ServeDir::new(&engine.config.web_dir).fallback(not_found.into_service());
    match files.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// A JSON request body; every failure (too large, not JSON, malformed, wrong
/// fields) is the JSON error. A missing `Content-Type` is read as JSON.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let content_type = content_type.to_str().unwrap_or("");
            if !content_type.starts_with("application/json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send JSON with Content-Type: application/json, not {content_type:?}"),
                ));
            }
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            } else {
                ApiError::new(rejection.status(), "invalid_request", rejection.body_text())
            }
        })?;
        serde_json::from_slice(&body)
            .map(ApiJson)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid JSON body: {e}")))
    }
}

fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().starts_with(media_type)))
}

async fn healthz(State(engine): State<AppState>) -> Json<serde_json::Value> {
    let llm = engine.llm.as_ref().map(|llm| {
        json!({
            "backend": llm.backend(),
            "model": llm.model(),
            "base_url": engine.config.llm.base_url,
            "readiness": llm.readiness(),
            // The tiny built-in model (the page says so once).
            "default_model": llm.backend() == "embedded" && engine.config.llm.model_path.is_none(),
        })
    });
    let auth_required = engine.auth.required().unwrap_or(true);
    let mut health = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "llm": llm,
        "auth": { "required": auth_required },
    });
    // With access control on, which datasets exist is for tokens to know.
    if !auth_required {
        health["datasets"] = json!(engine.catalog.list().iter().map(|listing| listing.name().to_string()).collect::<Vec<_>>());
    }
    Json(health)
}

/// The Prometheus metrics; with access control on, for admins (or on
/// `auth.metrics_listen`, which serves [`metrics_app`]).
async fn metrics(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Result<Response, ApiError> {
    principal.require_admin("/metrics")?;
    Ok(render_metrics(&engine).into_response())
}

fn render_metrics(engine: &Engine) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], engine.metrics.render())
}

/// `/metrics` alone, without a token: for `auth.metrics_listen`, an address only
/// the deployment's Prometheus reaches.
pub fn metrics_app(engine: AppState) -> Router {
    Router::new().route("/metrics", get(|State(engine): State<AppState>| async move { render_metrics(&engine) })).with_state(engine)
}

/// Who the token is, what it may use and what is left of its budget.
async fn me(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Json<Me> {
    Json(Me {
        auth_required: engine.auth.required().unwrap_or(true),
        name: principal.name.clone(),
        role: principal.role.as_str().into(),
        datasets: principal.datasets.as_ref().map(|d| d.iter().cloned().collect()),
        requests_per_minute: principal.limits.requests_per_minute,
        tokens_per_day: principal.limits.tokens_per_day,
        budget_remaining: engine.budgets.remaining(&principal),
        confirm_calls: principal.limits.confirm_calls,
    })
}

/// `GET /v1/audit` (admins): filters `principal`, `dataset`, `action`, `outcome`,
/// `since`, `until`; paging `before`, `limit`.
async fn audit(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    filter: Result<Query<AuditFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    principal.require_admin("the audit trail")?;
    let Query(filter) = filter.map_err(|e| Error::InvalidRequest(format!("audit filters: {}", e.body_text())))?;
    Ok(Json(engine.state.audit(filter).await?).into_response())
}

/// `POST /v1/tokens` (admins).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    role: Role,
    #[serde(default)]
    datasets: Option<Vec<String>>,
    /// Seconds from now.
    #[serde(default)]
    expires_in_secs: Option<i64>,
    #[serde(default, flatten)]
    limits: Limits,
}

async fn create_token(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    principal.require_admin("creating tokens")?;
    let known = engine.catalog.list();
    if let Some(unknown) = request.datasets.iter().flatten().find(|d| !known.iter().any(|l| l.name() == d.as_str())) {
        return Err(Error::InvalidRequest(format!("no dataset named {unknown:?}")).into());
    }
    if request.expires_in_secs.is_some_and(|s| s <= 0) {
        return Err(Error::InvalidRequest("expires_in_secs must be positive".into()).into());
    }
    let expires_at = request.expires_in_secs.map(|s| crate::auth::now() + s);
    let store = engine.auth.store().clone();
    let (info, secret) =
        blocking(move || store.create(&request.name, request.role, request.datasets, expires_at, request.limits)).await?;
    let mut body = serde_json::to_value(info).map_err(|e| Error::internal_from("token json", e))?;
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_tokens(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Result<Response, ApiError> {
    principal.require_admin("listing tokens")?;
    let store = engine.auth.store().clone();
    Ok(Json(blocking(move || store.list()).await?).into_response())
}

async fn revoke_token(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require_admin("revoking tokens")?;
    let store = engine.auth.store().clone();
    let target = id.clone();
    match blocking(move || store.revoke(&target)).await? {
        0 => Err(Error::not_found("token", id).into()),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn ask_handler(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<AskRequest>,
) -> Result<Response, ApiError> {
    if !accepts(&headers, "text/event-stream") {
        let response = ask::ask(&engine, &principal, "http", request, Events::default()).await?;
        return Ok(Json(response).into_response());
    }
    // Check what can be checked before the stream starts, so those errors keep their status.
    engine.dataset_for(&principal, &request.dataset)?;
    engine.require_llm()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task_engine = engine.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = ask::ask(&task_engine, &principal, "http", request, Events::to(tx.clone())).await {
            let api_error = ApiError::from(error);
            task_engine.metrics.error(api_error.code);
            let event = Event::Error { code: api_error.code.to_string(), message: api_error.message, details: api_error.details };
            let _ = tx.send(event);
        }
    });
    Ok(Sse::new(event_stream(rx, AbortOnDrop(task))).keep_alive(KeepAlive::default()).into_response())
}

/// Stops the question's work when the client goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn event_stream(
    mut rx: mpsc::UnboundedReceiver<Event>,
    guard: AbortOnDrop,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    async_stream::stream! {
        let _guard = guard;
        while let Some(event) = rx.recv().await {
            let name = event.name();
            let data = serde_json::to_string(&event).unwrap_or_else(|e| json!({"type": "error", "code": "internal", "message": e.to_string()}).to_string());
            yield Ok(SseEvent::default().event(name).data(data));
        }
    }
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

async fn sql_handler(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SqlRequest>,
) -> Result<Response, ApiError> {
    let format = if accepts(&headers, ARROW_STREAM) { SqlFormat::Arrow } else { SqlFormat::Table };
    let max_rows = engine.config.query.max_rows;
    let outcome = query::sql(&engine, &principal, "http", request, format, max_rows).await?;
    let table = match outcome.result {
        SqlResult::Arrow(arrow) => {
            let mut response = ([(header::CONTENT_TYPE, ARROW_STREAM)], arrow.bytes).into_response();
            add_count_headers(&mut response, arrow.row_count, arrow.truncated);
            return Ok(response);
        }
        SqlResult::Table(table) => table,
    };
    if accepts(&headers, "text/csv") {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let csv_error = |e: csv::Error| Error::internal_from(format!("csv: {e}"), e);
        writer.write_record(table.columns.iter().map(|c| c.name.as_str())).map_err(csv_error)?;
        for row in &table.rows {
            writer.write_record(row.iter().map(cell_text)).map_err(csv_error)?;
        }
        let bytes = writer.into_inner().map_err(|e| Error::internal_from(format!("csv: {e}"), e.into_error()))?;
        let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response();
        add_count_headers(&mut response, table.row_count, table.truncated);
        return Ok(response);
    }
    Ok(Json(SqlResponse { sql: outcome.sql, table, stats: outcome.stats }).into_response())
}

fn add_count_headers(response: &mut Response, row_count: u64, truncated: bool) {
    let headers = response.headers_mut();
    headers.insert("x-row-count", HeaderValue::from(row_count));
    headers.insert("x-truncated", HeaderValue::from_static(if truncated { "true" } else { "false" }));
}

async fn list_datasets(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Json<Vec<DatasetSummary>> {
    Json(engine.datasets_for(&principal).into_iter().map(Listing::summary).collect())
}

/// Reads the dataset again from where it lives (picks up a database's schema
/// changes, or attaches a database that is back); answers as `GET` does.
async fn refresh_dataset(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if !principal.may_use(&name) {
        return Err(Error::not_found("dataset", name).into());
    }
    principal.require_admin("refreshing a dataset")?;
    let reload = engine.clone();
    let target = name.clone();
    blocking(move || reload.catalog.reload(&target)).await?;
    get_dataset(State(engine), Extension(principal), Path(name)).await
}

async fn get_dataset(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let dataset = engine.dataset_for(&principal, &name)?;
    let mut sample_rows = std::collections::BTreeMap::new();
    for table in &dataset.info.tables {
        let sql = format!("SELECT * FROM {} LIMIT 5", sql::quote_name(&table.name));
        let options = QueryOptions { max_rows: 5, ..Default::default() };
        let (_, rows, _) = engine.executor.run_table(&dataset, &sql, options).await?;
        sample_rows.insert(table.name.clone(), rows);
    }
    let detail = DatasetDetail { info: dataset.info.clone(), sample_rows, schema_text: dataset.schema_text.clone() };
    Ok(Json(detail).into_response())
}

const MAX_EXAMPLE_CHARS: usize = 20_000;

/// A dataset's examples: the description file's (`verified`) and the saved ones
/// (`saved`: an admin sees all; others the approved ones and their own pending).
async fn list_examples(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let dataset = engine.dataset_for(&principal, &name)?;
    let saved: Vec<_> = engine
        .state
        .examples(Some(&name), None)
        .await?
        .into_iter()
        .filter(|e| principal.is_admin() || e.status == ExampleStatus::Approved || e.saved_by == principal.name)
        .collect();
    Ok(Json(json!({ "verified": dataset.info.verified, "saved": saved })).into_response())
}

/// Saves a question and the SQL that answers it (given, or a turn's), after the
/// SQL passes the read-only check and prepares on the dataset. An admin's example
/// is approved at once; another token's waits for an admin (`.../approve`).
async fn save_example(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<SaveExampleRequest>,
) -> Result<Response, ApiError> {
    let dataset = engine.dataset_for(&principal, &name)?;
    let (question, sql) = match (request.turn_id, request.question, request.sql) {
        (Some(turn_id), None, None) => {
            let (turn_dataset, question, sql) = engine.state.turn_source(turn_id, principal.owner_filter()).await?;
            if turn_dataset != name {
                return Err(Error::InvalidRequest(format!("turn {turn_id} is about dataset {turn_dataset:?}, not {name:?}")).into());
            }
            let sql = sql.ok_or_else(|| Error::InvalidRequest(format!("turn {turn_id} has no SQL (its question was unanswerable)")))?;
            (question, sql)
        }
        (None, Some(question), Some(sql)) => (question, sql),
        _ => {
            return Err(Error::InvalidRequest("give either \"turn_id\", or both \"question\" and \"sql\"".into()).into());
        }
    };
    let (question, sql) = (question.trim().to_string(), sql.trim().trim_end_matches(';').trim().to_string());
    if question.is_empty() || sql.is_empty() {
        return Err(Error::InvalidRequest("the question and the SQL must not be empty".into()).into());
    }
    if question.chars().count() + sql.chars().count() > MAX_EXAMPLE_CHARS {
        return Err(Error::InvalidRequest(format!("an example is at most {MAX_EXAMPLE_CHARS} characters")).into());
    }
    engine.executor.prepare(&dataset, &sql).await?;
    let status = if principal.is_admin() { ExampleStatus::Approved } else { ExampleStatus::Pending };
    let saved = engine.state.save_example(&name, &question, &sql, status, &principal.name).await?;
    audit_example(&engine, &principal, "example.save", &saved).await;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

async fn approve_example(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    engine.dataset_for(&principal, &name)?;
    principal.require_admin("approving an example")?;
    let approved = engine.state.approve_example(&name, id).await?;
    audit_example(&engine, &principal, "example.approve", &approved).await;
    Ok(Json(approved).into_response())
}

async fn delete_example(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    engine.dataset_for(&principal, &name)?;
    principal.require_admin("deleting an example")?;
    engine.state.delete_example(&name, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn audit_example(engine: &Engine, principal: &Principal, action: &str, example: &tag_types::SavedExample) {
    let entry = crate::state::AuditEntry {
        interface: "http".into(),
        action: action.into(),
        dataset: example.dataset.clone(),
        question: Some(example.question.clone()),
        sql: Some(example.sql.clone()),
        outcome: "ok".into(),
        ..crate::query::blank_entry()
    };
    engine.audit(principal, entry).await;
}

/// The persistent response cache (admins): entry count, or cleared.
async fn cache_info(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Result<Response, ApiError> {
    principal.require_admin("the response cache")?;
    let entries = match engine.cache.clone() {
        Some(cache) => Some(blocking(move || cache.len()).await?),
        None => None,
    };
    Ok(Json(json!({ "enabled": entries.is_some(), "entries": entries })).into_response())
}

async fn clear_cache(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Result<Response, ApiError> {
    principal.require_admin("clearing the response cache")?;
    let removed = match engine.cache.clone() {
        Some(cache) => blocking(move || cache.clear()).await?,
        None => 0,
    };
    Ok(Json(json!({ "removed": removed })).into_response())
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> crate::error::Result<T> + Send + 'static) -> crate::error::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(crate::error::Error::from)?
}

async fn list_conversations(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Result<Response, ApiError> {
    Ok(Json(engine.state.conversations(principal.owner_filter()).await?).into_response())
}

async fn get_conversation(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let conversation = engine.state.conversation(&id, principal.owner_filter()).await?;
    let turns = engine.state.turns(&id).await?;
    Ok(Json(ConversationDetail { conversation, turns }).into_response())
}

async fn rename_conversation(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RenameRequest>,
) -> Result<Response, ApiError> {
    let title = request.title.trim();
    if title.is_empty() {
        return Err(Error::InvalidRequest("the title is empty".into()).into());
    }
    engine.state.rename_conversation(&id, title, principal.owner_filter()).await?;
    Ok(Json(engine.state.conversation(&id, principal.owner_filter()).await?).into_response())
}

async fn delete_conversation(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.state.delete_conversation(&id, principal.owner_filter()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

const MAX_COMMENT_CHARS: usize = 4000;

/// Thumbs up or down on an answer (a turn of one's own conversation), with an
/// optional comment; a second verdict on the same turn replaces the first.
async fn add_feedback(
    State(engine): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<Response, ApiError> {
    let comment = request.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(Error::InvalidRequest(format!("the comment is longer than {MAX_COMMENT_CHARS} characters")).into());
    }
    let feedback = engine.state.set_feedback(request.turn_id, request.rating, comment, principal.owner_filter()).await?;
    engine.metrics.feedback(feedback.rating);
    Ok((StatusCode::CREATED, Json(feedback)).into_response())
}

/// Feedback on one's own answers; an admin's on everyone's.
async fn list_feedback(State(engine): State<AppState>, Extension(principal): Extension<Principal>) -> Result<Response, ApiError> {
    Ok(Json(engine.state.feedback(None, principal.owner_filter()).await?).into_response())
}
