//! The server's HTTP API as the page uses it: the server's own types (`tag-types`),
//! JSON requests, and the server-sent events of `/v1/ask` read from a streaming
//! `fetch` (EventSource cannot POST) as typed [`Event`]s. Every failure becomes an
//! [`ApiError`] that the page shows where it happened.

use serde::de::DeserializeOwned;
use serde_json::Value;
pub use tag_types::Event;
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

pub use tag_types::{Column, Conversation, ConversationDetail, DatasetDetail, DatasetSummary, Table as TableData};

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
    Err(match serde_json::from_str::<tag_types::ErrorBody>(&text) {
        Ok(body) => ApiError::new(&body.error.code, body.error.message),
        Err(_) => ApiError::new("http", format!("the server answered {status} {}", response.status_text())),
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

/// Splits complete events (blank-line separated) off the front of `buffer` and
/// reads their data; an event the page cannot read becomes an `error` event.
pub fn take_events(buffer: &mut Vec<u8>) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let text_end = buffer.windows(2).position(|w| w == b"\n\n");
        let Some(end) = text_end else { break };
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        let block = String::from_utf8_lossy(&block);
        let mut data = String::new();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        if data.is_empty() {
            continue; // keep-alive comment
        }
        events.push(serde_json::from_str(&data).unwrap_or_else(|e| Event::Error {
            code: "bad_response".into(),
            message: format!("unexpected event from the server: {e}"),
        }));
    }
    events
}

/// Posts a question to `/v1/ask` and calls `on_event` for every streamed event
/// until the stream ends. Aborting `signal` stops the request on the server too.
pub async fn ask_stream(body: Value, signal: AbortSignal, mut on_event: impl FnMut(Event)) -> Result<(), ApiError> {
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
