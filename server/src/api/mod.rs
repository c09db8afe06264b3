//! The HTTP API (axum): `/v1/ask` (JSON or server-sent events), `/v1/sql` (JSON,
//! CSV or Arrow IPC), datasets, conversations, feedback, `/healthz` and `/metrics`,
//! and the chat page's static bundle (`web_dir`) at `/`. Handlers are thin: they
//! parse, call the engine and shape the response. Request bodies are size-limited
//! and parsed by hand so that every bad input gets the JSON error.

mod error;

use std::{convert::Infallible, sync::Arc};

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, DefaultBodyLimit, MatchedPath, Path, Request, State},
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
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_http::{compression::CompressionLayer, services::ServeDir, trace::TraceLayer};

pub use error::ApiError;
use error::ErrorCode;

use crate::{
    ask::{self, AskRequest, Event},
    engine::Engine,
    error::Error,
    execution::{values::cell_text, QueryOptions},
    sql,
};

pub type AppState = Arc<Engine>;

/// The router, testable without a socket.
pub fn app(engine: AppState) -> Router {
    let body_limit = engine.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/ask", post(ask_handler))
        .route("/v1/sql", post(sql_handler))
        .route("/v1/datasets", get(list_datasets))
        .route("/v1/datasets/{name}", get(get_dataset))
        .route("/v1/conversations", get(list_conversations))
        .route("/v1/cache", get(cache_info).delete(clear_cache))
        .route(
            "/v1/conversations/{id}",
            get(get_conversation).patch(rename_conversation).delete(delete_conversation),
        )
        .route("/v1/feedback", get(list_feedback).post(add_feedback))
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
    let status = response.status().as_u16();
    engine.metrics.add("tag_http_requests_total", &format!("method=\"{method}\",route=\"{route}\",status=\"{status}\""), 1);
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        engine.metrics.add("tag_errors_total", &format!("code=\"{code}\""), 1);
    }
    response
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

/// Parses a JSON body, turning every failure into a clear JSON error.
fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        } else {
            ApiError::new(rejection.status(), "invalid_request", rejection.body_text())
        }
    })?;
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or("");
        if !content_type.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send JSON with Content-Type: application/json, not {content_type:?}"),
            ));
        }
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid JSON body: {e}")))
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
        })
    });
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "llm": llm,
        "datasets": engine.catalog.list().map(|d| d.info.name.clone()).collect::<Vec<_>>(),
    }))
}

async fn metrics(State(engine): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], engine.metrics.render())
}

async fn ask_handler(
    State(engine): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: AskRequest = parse_body(&headers, body)?;
    if !accepts(&headers, "text/event-stream") {
        let response = ask::ask(&engine, request, None).await?;
        return Ok(Json(response).into_response());
    }
    // Check what can be checked before the stream starts, so those errors keep their status.
    engine.catalog.get(&request.dataset)?;
    engine.require_llm()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task_engine = engine.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = ask::ask(&task_engine, request, Some(tx.clone())).await {
            let api_error = ApiError::from(error);
            task_engine.metrics.add("tag_errors_total", &format!("code=\"{}\"", api_error.code), 1);
            let _ = tx.send(Event::Error { code: api_error.code.to_string(), message: api_error.message });
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    dataset: String,
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

async fn sql_handler(
    State(engine): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: SqlRequest = parse_body(&headers, body)?;
    let dataset = engine.catalog.get(&request.dataset)?;
    let options = QueryOptions { max_rows: engine.config.query.max_rows, llm: engine.llm.clone(), progress: None };
    engine.metrics.add("tag_sql_queries_total", "", 1);
    if accepts(&headers, ARROW_STREAM) {
        let (_, (bytes, row_count, truncated), stats) = engine.executor.run_arrow(&dataset, &request.sql, options).await?;
        engine.metrics.add_execution(&stats);
        let mut response = ([(header::CONTENT_TYPE, ARROW_STREAM)], bytes).into_response();
        add_count_headers(&mut response, row_count, truncated);
        return Ok(response);
    }
    let (checked, table, stats) = engine.executor.run_table(&dataset, &request.sql, options).await?;
    engine.metrics.add_execution(&stats);
    if accepts(&headers, "text/csv") {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let csv_error = |e: csv::Error| Error::Internal(format!("csv: {e}"));
        writer.write_record(table.columns.iter().map(|c| c.name.as_str())).map_err(csv_error)?;
        for row in &table.rows {
            writer.write_record(row.iter().map(cell_text)).map_err(csv_error)?;
        }
        let bytes = writer.into_inner().map_err(|e| Error::Internal(format!("csv: {e}")))?;
        let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response();
        add_count_headers(&mut response, table.row_count, table.truncated);
        return Ok(response);
    }
    Ok(Json(json!({
        "sql": checked.original,
        "columns": table.columns,
        "rows": table.rows,
        "row_count": table.row_count,
        "truncated": table.truncated,
        "stats": stats,
    }))
    .into_response())
}

fn add_count_headers(response: &mut Response, row_count: u64, truncated: bool) {
    let headers = response.headers_mut();
    headers.insert("x-row-count", HeaderValue::from(row_count));
    headers.insert("x-truncated", HeaderValue::from_static(if truncated { "true" } else { "false" }));
}

#[derive(Serialize)]
struct DatasetSummary {
    name: String,
    description: String,
    tables: Vec<TableSummary>,
    examples: Vec<String>,
}

#[derive(Serialize)]
struct TableSummary {
    name: String,
    row_count: u64,
    columns: usize,
}

async fn list_datasets(State(engine): State<AppState>) -> Json<Vec<DatasetSummary>> {
    Json(
        engine
            .catalog
            .list()
            .map(|d| DatasetSummary {
                name: d.info.name.clone(),
                description: d.info.description.clone(),
                tables: d
                    .info
                    .tables
                    .iter()
                    .map(|t| TableSummary { name: t.name.clone(), row_count: t.row_count, columns: t.columns.len() })
                    .collect(),
                examples: d.info.examples.clone(),
            })
            .collect(),
    )
}

async fn get_dataset(State(engine): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let dataset = engine.catalog.get(&name)?;
    let mut samples = serde_json::Map::new();
    for table in &dataset.info.tables {
        let sql = format!("SELECT * FROM {} LIMIT 5", sql::quote_name(&table.name));
        let options = QueryOptions { max_rows: 5, llm: None, progress: None };
        let (_, rows, _) = engine.executor.run_table(&dataset, &sql, options).await?;
        samples.insert(table.name.clone(), json!({ "columns": rows.columns, "rows": rows.rows }));
    }
    let mut body = serde_json::to_value(&dataset.info).map_err(|e| Error::Internal(e.to_string()))?;
    body["sample_rows"] = serde_json::Value::Object(samples);
    body["schema_text"] = json!(dataset.schema_text);
    Ok(Json(body).into_response())
}

/// The persistent response cache: entry count, or cleared.
async fn cache_info(State(engine): State<AppState>) -> Result<Response, ApiError> {
    let entries = match engine.cache.clone() {
        Some(cache) => Some(blocking(move || cache.len()).await?),
        None => None,
    };
    Ok(Json(json!({ "enabled": entries.is_some(), "entries": entries })).into_response())
}

async fn clear_cache(State(engine): State<AppState>) -> Result<Response, ApiError> {
    let removed = match engine.cache.clone() {
        Some(cache) => blocking(move || cache.clear()).await?,
        None => 0,
    };
    Ok(Json(json!({ "removed": removed })).into_response())
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> crate::error::Result<T> + Send + 'static) -> crate::error::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| crate::error::Error::Internal(e.to_string()))?
}

async fn list_conversations(State(engine): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(engine.state.conversations().await?).into_response())
}

async fn get_conversation(State(engine): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let conversation = engine.state.conversation(&id).await?;
    let turns = engine.state.turns(&id).await?;
    Ok(Json(json!({ "conversation": conversation, "turns": turns })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    title: String,
}

async fn rename_conversation(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: RenameRequest = parse_body(&headers, body)?;
    let title = request.title.trim();
    if title.is_empty() {
        return Err(Error::InvalidRequest("the title is empty".into()).into());
    }
    engine.state.rename_conversation(&id, title).await?;
    Ok(Json(engine.state.conversation(&id).await?).into_response())
}

async fn delete_conversation(State(engine): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    engine.state.delete_conversation(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    turn_id: i64,
    /// `up` or `down`.
    rating: String,
    #[serde(default)]
    comment: Option<String>,
}

const MAX_COMMENT_CHARS: usize = 4000;

/// Thumbs up or down on an answer (a turn), with an optional comment; a second
/// verdict on the same turn replaces the first.
async fn add_feedback(
    State(engine): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: FeedbackRequest = parse_body(&headers, body)?;
    if !matches!(request.rating.as_str(), "up" | "down") {
        return Err(Error::InvalidRequest(format!("rating must be \"up\" or \"down\", not {:?}", request.rating)).into());
    }
    let comment = request.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(Error::InvalidRequest(format!("the comment is longer than {MAX_COMMENT_CHARS} characters")).into());
    }
    let feedback = engine.state.set_feedback(request.turn_id, &request.rating, comment).await?;
    engine.metrics.add("tag_feedback_total", &format!("rating=\"{}\"", feedback.rating), 1);
    Ok((StatusCode::CREATED, Json(feedback)).into_response())
}

async fn list_feedback(State(engine): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(engine.state.feedback(None).await?).into_response())
}
