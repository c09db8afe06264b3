//! The server's HTTP API as the page uses it: typed bodies, JSON requests, and the
//! server-sent events of `/v1/ask` read from a streaming `fetch` (EventSource cannot
//! POST). Every failure becomes an [`ApiError`] that the page shows where it happened.

use serde::{de::DeserializeOwned, Deserialize};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response};

#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError { code: code.into(), message: message.into() }
    }

    /// A request the page itself cancelled (the Stop button).
    pub fn is_abort(&self) -> bool {
        self.code == "aborted"
    }
}

fn from_js(code: &str, value: JsValue) -> ApiError {
    let name = js_sys::Reflect::get(&value, &"name".into()).ok().and_then(|n| n.as_string());
    if name.as_deref() == Some("AbortError") {
        return ApiError::new("aborted", "stopped");
    }
    let message = js_sys::Reflect::get(&value, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"));
    ApiError::new(code, message)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct DatasetSummary {
    pub name: String,
    pub description: String,
    pub examples: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct DatasetDetail {
    pub name: String,
    pub description: String,
    pub tables: Vec<TableInfo>,
    #[serde(default)]
    pub joins: Vec<String>,
    #[serde(default)]
    pub sample_rows: std::collections::BTreeMap<String, TableData>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct TableInfo {
    pub name: String,
    pub description: Option<String>,
    pub row_count: u64,
    pub columns: Vec<ColumnInfo>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: String,
}

/// A result table as the server sends it (rows limited, with the full count).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct TableData {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    #[serde(default)]
    pub row_count: u64,
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub dataset: String,
    pub title: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct StoredTurn {
    pub id: i64,
    pub question: String,
    pub sql: Option<String>,
    pub answer: String,
    pub row_count: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub turns: Vec<StoredTurn>,
}

async fn fetch(method: &str, path: &str, body: Option<&Value>, accept: &str, signal: Option<&AbortSignal>) -> Result<Response, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new().map_err(|e| from_js("internal", e))?;
    headers.set("Accept", accept).map_err(|e| from_js("internal", e))?;
    if let Some(body) = body {
        headers.set("Content-Type", "application/json").map_err(|e| from_js("internal", e))?;
        init.set_body(&JsValue::from_str(&body.to_string()));
    }
    init.set_headers(&headers);
    if let Some(signal) = signal {
        init.set_signal(Some(signal));
    }
    let window = web_sys::window().ok_or_else(|| ApiError::new("internal", "no window"))?;
    let response = JsFuture::from(window.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|e| from_js("unreachable", e))?;
    let response: Response = response.dyn_into().map_err(|e| from_js("internal", e))?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = text_of(&response).await.unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    Err(match error {
        Some(error) if error.is_object() => ApiError::new(
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("the server refused the request"),
        ),
        _ => ApiError::new("http", format!("the server answered {status} {}", response.status_text())),
    })
}

async fn text_of(response: &Response) -> Result<String, ApiError> {
    let promise = response.text().map_err(|e| from_js("internal", e))?;
    let text = JsFuture::from(promise).await.map_err(|e| from_js("unreachable", e))?;
    Ok(text.as_string().unwrap_or_default())
}

/// Sends a request and parses the JSON answer.
pub async fn call<T: DeserializeOwned>(method: &str, path: &str, body: Option<Value>) -> Result<T, ApiError> {
    let response = fetch(method, path, body.as_ref(), "application/json", None).await?;
    let text = text_of(&response).await?;
    let text = if text.is_empty() { "null" } else { &text };
    serde_json::from_str(text).map_err(|e| ApiError::new("bad_response", format!("unexpected answer from the server: {e}")))
}

pub fn encode(segment: &str) -> String {
    String::from(js_sys::encode_uri_component(segment))
}

/// One server-sent event: its name and JSON data.
pub struct SseEvent {
    pub name: String,
    pub data: Value,
}

/// Splits complete events (blank-line separated) off the front of `buffer`.
pub fn take_events(buffer: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let text_end = buffer.windows(2).position(|w| w == b"\n\n");
        let Some(end) = text_end else { break };
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        let block = String::from_utf8_lossy(&block);
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        if data.is_empty() {
            continue; // keep-alive comment
        }
        let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
        events.push(SseEvent { name, data });
    }
    events
}

/// Posts a question to `/v1/ask` and calls `on_event` for every streamed event
/// until the stream ends. Aborting `signal` stops the request on the server too.
pub async fn ask_stream(body: Value, signal: AbortSignal, mut on_event: impl FnMut(SseEvent)) -> Result<(), ApiError> {
    let response = fetch("POST", "/v1/ask", Some(&body), "text/event-stream", Some(&signal)).await?;
    let stream = response.body().ok_or_else(|| ApiError::new("bad_response", "the answer has no body"))?;
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut buffer = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| from_js("unreachable", e))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(|e| from_js("internal", e))?;
        buffer.extend(js_sys::Uint8Array::new(&value).to_vec());
        for event in take_events(&mut buffer) {
            on_event(event);
        }
    }
    Ok(())
}
