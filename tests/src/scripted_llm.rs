//! A deterministic OpenAI-compatible chat-completions server for tests. It answers
//! by rules (first matching regex over the last user message wins), records every
//! request, reports usage, stops at `max_tokens` (four bytes a token), streams when
//! asked, and misbehaves on demand: HTTP errors, delays, malformed JSON. It also
//! serves deterministic bag-of-words `/v1/embeddings`. It is a test double and lives
//! only in tests.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use regex::Regex;
use serde_json::{json, Value};

/// One way to misbehave, used for the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and an error body.
    Status(u16),
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Answer 200 with a body that is not JSON.
    Malformed,
}

type Responder = Arc<dyn Fn(&str) -> String + Send + Sync>;

struct Rule {
    pattern: Regex,
    respond: Responder,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub messages: Vec<(String, String)>,
    pub stream: bool,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
}

impl Recorded {
    pub fn last_user(&self) -> &str {
        self.messages.iter().rev().find(|(role, _)| role == "user").map(|(_, c)| c.as_str()).unwrap_or("")
    }

    pub fn system(&self) -> &str {
        self.messages.iter().find(|(role, _)| role == "system").map(|(_, c)| c.as_str()).unwrap_or("")
    }
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    faults: VecDeque<(Option<Regex>, Fault)>,
    recorded: Vec<Recorded>,
    default_reply: Option<String>,
}

#[derive(Clone)]
pub struct ScriptedLlm {
    pub address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl ScriptedLlm {
    /// Starts the server on a free loopback port, on the current tokio runtime.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts the server on `bind` (e.g. `0.0.0.0:0`, for containers to reach it).
    pub async fn start_on(bind: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind the scripted LLM");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("scripted LLM server");
        });
        ScriptedLlm { address, shared }
    }

    /// The base URL to configure (`.../v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Replies `reply` when the last user message matches `pattern`.
    pub fn on(&self, pattern: &str, reply: impl Into<String>) -> &Self {
        let reply = reply.into();
        self.on_fn(pattern, move |_| reply.clone())
    }

    /// Replies `respond(last user message)` when it matches `pattern`.
    pub fn on_fn(&self, pattern: &str, respond: impl Fn(&str) -> String + Send + Sync + 'static) -> &Self {
        let rule = Rule { pattern: Regex::new(pattern).expect("valid rule regex"), respond: Arc::new(respond) };
        self.shared.lock().unwrap().rules.push(rule);
        self
    }

    /// The reply when no rule matches (otherwise such a request gets HTTP 500).
    pub fn default_reply(&self, reply: impl Into<String>) -> &Self {
        self.shared.lock().unwrap().default_reply = Some(reply.into());
        self
    }

    /// Misbehaves `times` times on the next requests (whose last user message
    /// matches `pattern`, when given).
    pub fn fail(&self, pattern: Option<&str>, fault: Fault, times: usize) -> &Self {
        let mut shared = self.shared.lock().unwrap();
        for _ in 0..times {
            shared.faults.push_back((pattern.map(|p| Regex::new(p).expect("valid fault regex")), fault.clone()));
        }
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().recorded.clone()
    }

    /// Requests whose last user message matches `pattern`.
    pub fn requests_matching(&self, pattern: &str) -> Vec<Recorded> {
        let pattern = Regex::new(pattern).expect("valid regex");
        self.requests().into_iter().filter(|r| pattern.is_match(r.last_user())).collect()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().unwrap().recorded.clear();
    }
}

fn approximate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Dimensions of the scripted embeddings.
const EMBEDDING_DIMENSIONS: usize = 64;

/// A deterministic bag-of-words embedding: each lower-cased word adds 1 to a
/// dimension chosen by its hash, so texts that share words are close in cosine.
pub fn scripted_embedding(text: &str) -> Vec<f32> {
    use std::hash::{Hash, Hasher};
    let mut vector = vec![0.0f32; EMBEDDING_DIMENSIONS];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        word.to_lowercase().hash(&mut hasher);
        vector[(hasher.finish() % EMBEDDING_DIMENSIONS as u64) as usize] += 1.0;
    }
    vector
}

/// `/v1/embeddings`: one [`scripted_embedding`] per input, OpenAI's answer shape.
async fn embeddings(body: String) -> Response {
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "request is not JSON").into_response();
    };
    let inputs: Vec<String> = match &request["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or("").to_string()).collect(),
        _ => return (StatusCode::BAD_REQUEST, "input must be a string or a list of strings").into_response(),
    };
    let tokens: u64 = inputs.iter().map(|i| approximate_tokens(i)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": scripted_embedding(text)}))
        .collect();
    Json(json!({"object": "list", "data": data, "model": request["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
        .into_response()
}

async fn chat(State(shared): State<Arc<Mutex<Shared>>>, body: String) -> Response {
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "request is not JSON").into_response();
    };
    let messages: Vec<(String, String)> = request["messages"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| (m["role"].as_str().unwrap_or("").to_string(), m["content"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let recorded = Recorded {
        stream: request["stream"].as_bool().unwrap_or(false),
        model: request["model"].as_str().unwrap_or("").to_string(),
        temperature: request["temperature"].as_f64(),
        max_tokens: request["max_tokens"].as_u64(),
        messages,
    };
    let last_user = recorded.last_user().to_string();
    let prompt_text: String = recorded.messages.iter().map(|(_, c)| c.as_str()).collect();

    let (fault, reply) = {
        let mut shared = shared.lock().unwrap();
        shared.recorded.push(recorded.clone());
        let position = shared
            .faults
            .iter()
            .position(|(pattern, _)| pattern.as_ref().is_none_or(|p| p.is_match(&last_user)));
        let fault = position.and_then(|i| shared.faults.remove(i)).map(|(_, f)| f);
        let reply = shared
            .rules
            .iter()
            .find(|rule| rule.pattern.is_match(&last_user))
            .map(|rule| (rule.respond)(&last_user))
            .or_else(|| shared.default_reply.clone());
        (fault, reply)
    };

    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, Json(json!({"error": {"message": "scripted failure"}}))).into_response();
        }
        Some(Fault::Malformed) => {
            return ([("content-type", "application/json")], "{\"choices\": [ this is not json").into_response();
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let Some(mut reply) = reply else {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": {"message": format!("no rule for: {last_user}")}})))
            .into_response();
    };
    // A real server stops at `max_tokens`; here a token is four bytes, as in the usage.
    let mut finish_reason = "stop";
    if let Some(max) = recorded.max_tokens {
        if approximate_tokens(&reply) > max {
            let mut cut = (max as usize * 4).min(reply.len());
            while !reply.is_char_boundary(cut) {
                cut -= 1;
            }
            reply.truncate(cut);
            finish_reason = "length";
        }
    }
    let usage = json!({
        "prompt_tokens": approximate_tokens(&prompt_text),
        "completion_tokens": approximate_tokens(&reply),
        "total_tokens": approximate_tokens(&prompt_text) + approximate_tokens(&reply),
        "prompt_tokens_details": {"cached_tokens": 0},
    });
    if !recorded.stream {
        return Json(json!({
            "id": "scripted",
            "object": "chat.completion",
            "model": recorded.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": finish_reason}],
            "usage": usage,
        }))
        .into_response();
    }
    let mut events = String::new();
    for piece in reply.split_inclusive(' ') {
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": piece}}]});
        events.push_str(&format!("data: {chunk}\n\n"));
    }
    events.push_str(&format!("data: {}\n\n", json!({"choices": [], "usage": usage})));
    events.push_str("data: [DONE]\n\n");
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(events))
        .expect("valid response")
}
