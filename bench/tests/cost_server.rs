//! The cost-model server answers like an OpenAI-compatible server: usage with the
//! prompt's cached tokens, and completions cut at the request's `max_tokens`.

use std::sync::Arc;

use serde_json::{json, Value};
use tag_bench::cost_server::{CostModel, CostServer};
use tag_server::llm::embedded::Tokenizer;
use tag_tests::model::default_model;

async fn ask(server: &CostServer, user: &str, max_tokens: Option<u64>) -> Value {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": user}]});
    if let Some(max) = max_tokens {
        body["max_tokens"] = json!(max);
    }
    let url = format!("{}/chat/completions", server.base_url);
    reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stop_at_max_tokens_and_repeated_prefixes_are_cached() {
    let Some(model) = default_model().await else { return };
    let tokenizer = Arc::new(Tokenizer::load(&model).unwrap());
    let cost = CostModel { prefill_us_per_token: 1, decode_us_per_token: 1, overhead_us: 0, ..CostModel::default() };
    let server = CostServer::start(cost, tokenizer.clone()).await.unwrap();
    let question = format!("{} Is it true? Reply with one word: yes or no.", "A long shared preamble. ".repeat(20));

    let whole = ask(&server, &question, None).await;
    let answer = whole["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(answer == "yes" || answer == "no", "{whole}");
    let answer_tokens = tokenizer.tokenize(&answer).len() as u64;
    assert_eq!(whole["usage"]["completion_tokens"], json!(answer_tokens + 1), "the answer and its end token: {whole}");
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    let short = ask(&server, &question, Some(1)).await;
    assert_eq!(short["usage"]["completion_tokens"], 1, "{short}");
    assert_eq!(short["choices"][0]["finish_reason"], "length");
    assert_eq!(short["choices"][0]["message"]["content"].as_str().unwrap(), tokenizer.detokenize(&tokenizer.tokenize(&answer)[..1]));
    let prompt_tokens = short["usage"]["prompt_tokens"].as_u64().unwrap();
    let cached = short["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert_eq!(cached, prompt_tokens / 16 * 16, "every whole block of the repeated prompt is cached: {short}");

    let totals = server.totals();
    assert_eq!((totals.requests, totals.completion_tokens), (2, answer_tokens + 2));
}
