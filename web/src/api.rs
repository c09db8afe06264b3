//! The server's HTTP API as the page uses it: the server's own types (`tag-types`),
//! JSON requests, and the server-sent events of `/v1/ask` read from a streaming
//! `fetch` (EventSource cannot POST) as typed [`Event`]s. Every failure becomes an
//! [`ApiError`] that the page shows where it happened. The access token, when the
//! server requires one, lives in the browser session's storage (gone when the tab
//! closes) and goes with every request as `Authorization: Bearer`.

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
    /// The error object's other fields (the estimate of `confirmation_required`).
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError { code: code.into(), message: message.into(), details: None }
    }

    /// A request the page itself cancelled (the Stop button).
    pub fn is_abort(&self) -> bool {
        self.code == "aborted"
    }

    /// The estimate to confirm, when the server asks for a confirmation.
    pub fn confirmation(&self) -> Option<Confirmation> {
        confirmation(&self.code, self.details.as_ref()?)
    }
}

/// A query's estimate that the server wants confirmed before it runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirmation {
    pub llm_calls: u64,
    pub tokens: u64,
    pub estimate_id: String,
    /// The estimate changed since an earlier confirmation.
    pub changed: bool,
}

impl Confirmation {
    /// "about 684 LLM calls, about 52,000 tokens".
    pub fn text(&self) -> String {
        format!("about {} LLM calls, about {} tokens", thousands(self.llm_calls), thousands(self.tokens))
    }
}

/// 52000 as "52,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The confirmation an error code and its details ask for.
pub fn confirmation(code: &str, details: &Value) -> Option<Confirmation> {
    if code != "confirmation_required" && code != "estimate_changed" {
        return None;
    }
    Some(Confirmation {
        llm_calls: details["estimate"]["llm_calls"].as_u64()?,
        tokens: details["estimate"]["tokens"].as_u64()?,
        estimate_id: details["estimate_id"].as_str()?.to_string(),
        changed: code == "estimate_changed",
    })
}

const TOKEN_KEY: &str = "tag-token";

fn session() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

const TINY_MODEL_NOTICE_KEY: &str = "tag-tiny-model-notice-seen";

/// Whether this browser was already told that the default model is tiny.
pub fn tiny_model_notice_seen() -> bool {
    let local = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    local.and_then(|s| s.get_item(TINY_MODEL_NOTICE_KEY).ok().flatten()).is_some()
}

/// Remembers (in this browser, across sessions) that the notice was shown.
pub fn set_tiny_model_notice_seen() {
    if let Some(local) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = local.set_item(TINY_MODEL_NOTICE_KEY, "1");
    }
}

/// The access token of this browser session.
pub fn token() -> Option<String> {
    session()?.get_item(TOKEN_KEY).ok()?.filter(|t| !t.is_empty())
}

/// Keeps (or, with `None`, forgets) the access token for this browser session.
pub fn set_token(token: Option<&str>) {
    if let Some(storage) = session() {
        let _ = match token {
            Some(token) => storage.set_item(TOKEN_KEY, token),
            None => storage.remove_item(TOKEN_KEY),
        };
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

pub use tag_types::{Conversation, ConversationDetail, DatasetDetail, DatasetSummary, Table as TableData};

async fn fetch(method: &str, path: &str, body: Option<&Value>, accept: &str, signal: Option<&AbortSignal>) -> Result<Response, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new().map_err(|e| from_js("internal", e))?;
    headers.set("Accept", accept).map_err(|e| from_js("internal", e))?;
    if let Some(token) = token() {
        headers.set("Authorization", &format!("Bearer {token}")).map_err(|e| from_js("internal", e))?;
    }
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
    Err(error_of(&text).unwrap_or_else(|| ApiError::new("http", format!("the server answered {status} {}", response.status_text()))))
}

/// The server's JSON error, with its other fields as details.
pub fn error_of(text: &str) -> Option<ApiError> {
    let body: Value = serde_json::from_str(text).ok()?;
    let error = body.get("error")?;
    let mut api = ApiError::new(error["code"].as_str()?, error["message"].as_str()?);
    api.details = Some(error.clone());
    Some(api)
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
            details: None,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_confirmation_is_read_from_the_servers_error() {
        let error = error_of(
            &json!({"error": {"code": "confirmation_required", "message": "costly", "estimate_id": "e1",
                "estimate": {"llm_calls": 684, "tokens": 52000, "operators": [], "complete": true}}})
            .to_string(),
        )
        .unwrap();
        let asked = error.confirmation().unwrap();
        assert_eq!((asked.llm_calls, asked.estimate_id.as_str(), asked.changed), (684, "e1", false));
        assert_eq!(asked.text(), "about 684 LLM calls, about 52,000 tokens");
        assert!(ApiError::new("sql_error", "x").confirmation().is_none());
        assert!(confirmation("estimate_changed", &json!({"estimate_id": "e2", "estimate": {"llm_calls": 1, "tokens": 2}})).unwrap().changed);
        assert_eq!((thousands(0), thousands(999), thousands(1000), thousands(1234567)), ("0".into(), "999".into(), "1,000".into(), "1,234,567".into()));
    }
}
