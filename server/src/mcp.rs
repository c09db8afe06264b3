//! The MCP server (the `rmcp` crate, the official Rust SDK) at `/mcp`, over
//! streamable HTTP, for agents. It sits behind the same token check as the HTTP
//! API (the request's [`Principal`] comes with each call), and every call goes
//! through the same functions as `/v1/ask` and `/v1/sql` (interface `mcp`): the
//! read-only check, LLM operators, budgets and audit.
//!
//! Tools: `list_datasets`, `describe_dataset`, `ask` (the answer, the SQL and the
//! rows, with progress notifications while it runs when the client asks for
//! them) and `sql` (read-only SQL with LLM operators). Resources: each dataset's
//! schema, as the SQL-writing LLM sees it (`tag://datasets/{name}/schema`).
//! A tool that fails answers a tool error (`isError`) with the server's error
//! code and message, as the HTTP API would; a cancelled call stops its work.

use std::sync::Arc;

use axum::http::request::Parts;
use rmcp::{
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, ResourceContents,
        ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
    },
    service::RequestContext,
    transport::streamable_http_server::{session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService},
    ErrorData, RoleServer, ServerHandler,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tag_types::{Event, SqlRequest};
use tokio::sync::mpsc;

use crate::{
    ask::{self, AskRequest, Events},
    auth::Principal,
    catalog::Listing,
    engine::Engine,
    error::Error,
    query::{self, SqlFormat, SqlResult},
};

/// The `/mcp` service. With tokens required the `Host` header is not checked
/// (the token is what protects it); without, only loopback names are accepted,
/// against DNS rebinding (the server then listens on loopback only anyway).
pub fn service(engine: Arc<Engine>) -> StreamableHttpService<Mcp, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default();
    if engine.auth.required().unwrap_or(true) {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(move || Ok(Mcp { engine: engine.clone() }), Default::default(), config)
}

#[derive(Clone)]
pub struct Mcp {
    engine: Arc<Engine>,
}

/// Rows a tool returns unless it asks for fewer (agents read them as text).
const DEFAULT_ROWS: usize = 100;

fn object(value: Value) -> Arc<Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(Map::new()),
    }
}

fn tools() -> Vec<Tool> {
    let dataset = json!({"type": "string", "description": "the dataset's name (list_datasets)"});
    let read_only = |mut tool: Tool, open_world: bool| {
        let mut hints = ToolAnnotations::default();
        hints.read_only_hint = Some(true);
        hints.open_world_hint = Some(open_world);
        tool.annotations = Some(hints);
        tool
    };
    vec![
        read_only(Tool::new("list_datasets", "The datasets this token may query: name, description, tables, example questions.", object(json!({"type": "object", "properties": {}}))), false),
        read_only(
            Tool::new(
                "describe_dataset",
                "A dataset's tables and columns (types, descriptions, sample values, keys) and the schema text the SQL writer sees.",
                object(json!({"type": "object", "properties": {"dataset": dataset}, "required": ["dataset"]})),
            ),
            false,
        ),
        read_only(
            Tool::new(
                "ask",
                "Answers a question in plain language over a dataset: writes SQL (with LLM operators where the question needs knowledge or judgement), runs it, and answers from the result. Returns the answer, the SQL and the rows.",
                object(json!({"type": "object", "properties": {
                    "dataset": dataset,
                    "question": {"type": "string"},
                    "max_rows": {"type": "integer", "minimum": 0, "description": format!("rows to return (default {DEFAULT_ROWS})")}
                }, "required": ["dataset", "question"]})),
            ),
            true,
        ),
        read_only(
            Tool::new(
                "sql",
                "Runs one read-only DuckDB SELECT over a dataset. LLM operators are SQL functions: llm_filter('{col} is ...'), llm_map, llm_classify, llm_score, llm_reduce, llm_rank, llm_knowledge.",
                object(json!({"type": "object", "properties": {
                    "dataset": dataset,
                    "sql": {"type": "string"},
                    "max_rows": {"type": "integer", "minimum": 0, "description": format!("rows to return (default {DEFAULT_ROWS})")}
                }, "required": ["dataset", "sql"]})),
            ),
            true,
        ),
    ]
}

#[derive(Deserialize)]
struct DatasetArgs {
    dataset: String,
}

#[derive(Deserialize)]
struct AskArgs {
    dataset: String,
    question: String,
    max_rows: Option<usize>,
}

#[derive(Deserialize)]
struct SqlArgs {
    dataset: String,
    sql: String,
    max_rows: Option<usize>,
}

fn arguments<T: serde::de::DeserializeOwned>(request: &CallToolRequestParams) -> Result<T, ErrorData> {
    let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
    serde_json::from_value(arguments).map_err(|e| ErrorData::invalid_params(format!("{}: {e}", request.name), None))
}

/// The principal the token check put on the HTTP request.
fn principal(context: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    context
        .extensions
        .get::<Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| ErrorData::invalid_request("no principal: /mcp is served behind the token check", None))
}

/// A server error as a tool error: its code and message, as on the HTTP API.
fn tool_error(error: Error) -> CallToolResult {
    CallToolResult::structured_error(json!({"code": error.code(), "message": error.to_string()}))
}

/// The progress message of one of the ask's events, if it is worth one.
fn progress_message(event: &Event) -> Option<String> {
    match event {
        Event::Stage { stage, attempt } => Some(format!("{stage:?} (attempt {attempt})").to_lowercase()),
        Event::Sql { sql, .. } => Some(format!("sql: {sql}")),
        Event::Progress(progress) => {
            let calls: u64 = progress.operators.iter().map(|o| o.llm_calls).sum();
            Some(format!("running: {calls} LLM calls after {} ms", progress.elapsed_ms))
        }
        Event::Rows { row_count, .. } => Some(format!("{row_count} rows")),
        _ => None,
    }
}

impl Mcp {
    fn list_datasets(&self, principal: &Principal) -> CallToolResult {
        let datasets: Vec<_> = self.engine.datasets_for(principal).into_iter().map(Listing::summary).collect();
        CallToolResult::structured(json!({ "datasets": datasets }))
    }

    fn describe_dataset(&self, principal: &Principal, name: &str) -> Result<CallToolResult, Error> {
        let dataset = self.engine.dataset_for(principal, name)?;
        Ok(CallToolResult::structured(json!({"dataset": dataset.info, "schema_text": dataset.schema_text})))
    }

    async fn ask(&self, principal: Principal, args: AskArgs, context: &RequestContext<RoleServer>) -> Result<CallToolResult, Error> {
        let (tx, mut events) = mpsc::unbounded_channel();
        let request = AskRequest { question: args.question, dataset: args.dataset, conversation_id: None, confirm: false, estimate_id: None };
        let engine = self.engine.clone();
        let mut task = tokio::spawn(async move { ask::ask(&engine, &principal, "mcp", request, Events::to(tx)).await });
        let token = context.meta.get_progress_token();
        let mut step = 0.0;
        let answer = loop {
            tokio::select! {
                joined = &mut task => break joined.map_err(|e| Error::internal(format!("the question's task failed: {e}")))??,
                Some(event) = events.recv() => {
                    if let (Some(token), Some(message)) = (&token, progress_message(&event)) {
                        step += 1.0;
                        let _ = context.peer.notify_progress(ProgressNotificationParam::new(token.clone(), step).with_message(message)).await;
                    }
                }
                // The client cancelled the call: dropping the question stops its
                // LLM calls and its query.
                _ = context.ct.cancelled() => {
                    task.abort();
                    return Err(Error::Cancelled);
                }
            }
        };
        let rows: Vec<_> = answer.rows.iter().take(args.max_rows.unwrap_or(DEFAULT_ROWS)).collect();
        Ok(CallToolResult::structured(json!({
            "answer": answer.answer,
            "sql": answer.sql,
            "columns": answer.columns,
            "rows": rows,
            "row_count": answer.row_count,
            "truncated": answer.truncated || rows.len() < answer.rows.len(),
            "stats": answer.stats,
        })))
    }

    async fn sql(&self, principal: &Principal, args: SqlArgs) -> Result<CallToolResult, Error> {
        let max_rows = args.max_rows.unwrap_or(DEFAULT_ROWS).min(self.engine.config.query.max_rows);
        let request = SqlRequest { sql: args.sql, dataset: args.dataset, confirm: false, estimate_id: None };
        let outcome = query::sql(&self.engine, principal, "mcp", request, SqlFormat::Table, max_rows).await?;
        let SqlResult::Table(table) = outcome.result else { return Err(Error::internal("asked for a table, got Arrow")) };
        Ok(CallToolResult::structured(json!({
            "sql": outcome.sql,
            "columns": table.columns,
            "rows": table.rows,
            "row_count": table.row_count,
            "truncated": table.truncated,
            "stats": outcome.stats,
        })))
    }
}

const SCHEMA_URI: (&str, &str) = ("tag://datasets/", "/schema");

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("tag-server", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Table-augmented generation: ask questions in plain language about the datasets (ask), \
or run read-only SQL with LLM operators (sql). Start with list_datasets and describe_dataset.",
            )
    }

    async fn list_tools(&self, _request: Option<PaginatedRequestParams>, _context: RequestContext<RoleServer>) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let principal = principal(&context)?;
        let result = match request.name.as_ref() {
            "list_datasets" => Ok(self.list_datasets(&principal)),
            "describe_dataset" => self.describe_dataset(&principal, &arguments::<DatasetArgs>(&request)?.dataset),
            "ask" => self.ask(principal, arguments(&request)?, &context).await,
            "sql" => self.sql(&principal, arguments(&request)?).await,
            other => return Err(ErrorData::invalid_params(format!("no tool named {other}: list_datasets, describe_dataset, ask, sql"), None)),
        };
        Ok(result.unwrap_or_else(tool_error).into())
    }

    async fn list_resources(&self, _request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListResourcesResult, ErrorData> {
        let principal = principal(&context)?;
        let resources = self
            .engine
            .datasets_for(&principal)
            .into_iter()
            .filter_map(|listing| match listing {
                Listing::Ready(d) => Some(
                    Resource::new(format!("{}{}{}", SCHEMA_URI.0, d.info.name, SCHEMA_URI.1), format!("{} schema", d.info.name))
                        .with_description(d.info.description.clone())
                        .with_mime_type("text/plain"),
                ),
                Listing::Unavailable { .. } => None,
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(&self, request: ReadResourceRequestParams, context: RequestContext<RoleServer>) -> Result<ReadResourceResponse, ErrorData> {
        let principal = principal(&context)?;
        let not_found = || ErrorData::resource_not_found(format!("no resource {}", request.uri), None);
        let name = request.uri.strip_prefix(SCHEMA_URI.0).and_then(|rest| rest.strip_suffix(SCHEMA_URI.1)).ok_or_else(not_found)?;
        let dataset = self.engine.dataset_for(&principal, name).map_err(|_| not_found())?;
        let contents = ResourceContents::text(dataset.schema_text.clone(), request.uri.clone()).with_mime_type("text/plain");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}
