//! The TAG-Bench harness end to end on fixture databases (the five BIRD schemas
//! from `../shared/data/tagbench/bird_schemas`, five made-up rows per table), a
//! small query file in the official format, and the scripted LLM: every method
//! runs, answers are scored, reports are written, an interrupted run resumes, and
//! every hand-written plan of the project passes the read-only check and prepares
//! against the schemas.
//!
//! Skipped when the shared data is not here, unless `TAG_REQUIRE_SHARED_DATA` is set.

use std::{collections::HashMap, path::PathBuf};

use tag_bench::tagbench::{
    self,
    answer::Answer,
    methods::{Method, RagSettings},
    report, RunOptions,
};
use tag_tests::scripted_llm::ScriptedLlm;

fn schemas_dir() -> Option<PathBuf> {
    let dir = tagbench::shared_data_dir().join("tagbench/bird_schemas");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("TAG_REQUIRE_SHARED_DATA").is_some() {
        panic!("{} is missing", dir.display());
    }
    eprintln!("skipping: {} is not here (set TAG_SHARED_DATA)", dir.display());
    None
}

const QUERIES: &str = "Query ID,DB used,Query,(TAG baseline) Text2SQL Input,Query type,Knowledge/Reasoning Type,Answer
1,debit_card_specializing,How many customers pay in the currency of a euro-zone country?,List the currencies of the customers,Match,Knowledge,2
2,formula_1,Which two drivers have the highest driver IDs? List them from the highest down.,List driver surnames by ID,Ranking,Reasoning,\"['surname 5', 'surname 4']\"
3,california_schools,What is the phone number of the school with code CDSCode 3?,List school phones,Comparison,Knowledge,Phone 3
4,codebase_community,Summarize the titles of the posts.,List the post titles,Aggregation,Reasoning,
";

fn plans() -> HashMap<u32, String> {
    HashMap::from([
        (1, "SELECT count(*) FROM customers WHERE llm_filter('{Currency} is the currency of a euro-zone country')".to_string()),
        (2, "SELECT surname FROM drivers ORDER BY driverId DESC LIMIT 2".to_string()),
        (3, "SELECT Phone FROM schools WHERE CDSCode = 'CDSCode 3'".to_string()),
        (4, "SELECT llm_reduce('Summarize the titles', list(Title)) FROM posts".to_string()),
    ])
}

fn script(llm: &ScriptedLlm) {
    // Operators of the plans.
    llm.on(r"(?s)Statement: .*euro-zone.*Currency [24]\b", "yes");
    llm.on(r"(?s)Statement: .*euro-zone", "no");
    llm.on(r"(?s)Summarize the titles", "The posts are titled Title 1 to Title 5.");
    // Synthesis for `tag` (the question, then the format instruction).
    llm.on(r"(?s)^How many customers pay.*\nAnswer with", "```sql\nSELECT count(*) AS n FROM customers WHERE llm_filter('{Currency} is the currency of a euro-zone country')\n```");
    llm.on(r"(?s)^Which two drivers.*\nAnswer with", "```sql\nSELECT surname FROM drivers ORDER BY driverId DESC LIMIT 2\n```");
    llm.on(r"(?s)^What is the phone number.*\nAnswer with", "```sql\nSELECT Phone FROM schools WHERE CDSCode = 'CDSCode 3'\n```");
    llm.on(r"(?s)^Summarize the titles of the posts\.\nAnswer", "```sql\nSELECT Title FROM posts\n```");
    // Generation for `tag`.
    llm.on(r"^Question: How many customers pay", "2");
    llm.on(r"^Question: Which two drivers", "['surname 5', 'surname 4']");
    llm.on(r"^Question: What is the phone number", "Phone 3");
    llm.on(r"^Question: Summarize the titles", "Five posts, Title 1 to Title 5.");
    // Plain SQL for text2sql (the question) and text2sql-lm (the Text2SQL input).
    llm.on(r"^How many customers pay in the currency of a euro-zone country\?$", "```sql\nSELECT count(*) FROM customers\n```");
    llm.on(r"^Which two drivers have the highest driver IDs", "```sql\nSELECT surname FROM drivers ORDER BY driverId DESC LIMIT 2\n```");
    llm.on(r"^What is the phone number of the school", "I cannot write SQL for that.");
    llm.on(r"^Summarize the titles of the posts\.$", "```sql\nSELECT Title FROM posts\n```");
    llm.on(r"^List the currencies of the customers$", "```sql\nSELECT CustomerID, Currency FROM customers\n```");
    llm.on(r"^List driver surnames by ID$", "```sql\nSELECT driverId, surname FROM drivers\n```");
    llm.on(r"^List school phones$", "```sql\nSELECT CDSCode, Phone FROM schools\n```");
    llm.on(r"^List the post titles$", "```sql\nSELECT Title FROM posts\n```");
    // retrieval-rank's relevance scores, then the answers from rows (text2sql-lm, rag, retrieval-rank).
    llm.on(r"(?s)^Question: .*\nRow: .*How relevant", "0.5");
    llm.on(r"(?s)^Data:.*Question: How many customers pay", "2");
    llm.on(r"(?s)^Data:.*Question: Which two drivers", "surname 4, surname 5");
    llm.on(r"(?s)^Data:.*Question: What is the phone number", "Phone 3.");
    llm.on(r"(?s)^Data:.*Question: Summarize the titles", "Titles 1 to 5.");
}

fn config(llm: &ScriptedLlm) -> tag_server::Config {
    let mut config = tag_server::Config::default();
    config.llm.base_url = Some(llm.base_url());
    config.llm.model = "scripted-model".into();
    config.llm.retry_base_ms = 5;
    config.llm.max_retries = 0;
    config.query.max_repairs = 0;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_runs_end_to_end_on_the_fixtures() {
    let Some(schemas) = schemas_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("dbs");
    tagbench::fixtures(&schemas, &db_dir, 5).unwrap();
    let queries = dir.path().join("queries.csv");
    std::fs::write(&queries, QUERIES).unwrap();
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let out = dir.path().join("run");
    let all = vec![Method::Handwritten, Method::Tag, Method::Text2sql, Method::Text2sqlLm, Method::Rag, Method::RetrievalRank];
    let options = |methods: Vec<Method>, fresh: bool| RunOptions {
        config: config(&llm),
        queries: queries.clone(),
        db_dir: db_dir.clone(),
        out: out.clone(),
        methods,
        only: None,
        parallel: 2,
        fresh,
        plans: plans(),
        rag: RagSettings { max_rows_per_table: 100, top_k: 3, rerank_candidates: 6, embedding_model: "scripted".into() },
    };
    let runs = tagbench::run(options(all.clone(), true)).await.unwrap();
    assert_eq!(runs.len(), 6);
    let by_method: HashMap<&str, &report::Run> = runs.iter().map(|r| (r.method.as_str(), r)).collect();
    let correct = |method: &str| -> Vec<Option<bool>> { by_method[method].records.iter().map(|r| r.correct).collect() };

    // Hand-written plans and the full pipeline answer all three; the aggregation has no score.
    assert_eq!(correct("handwritten"), vec![Some(true), Some(true), Some(true), None], "{:#?}", by_method["handwritten"].records);
    assert_eq!(correct("tag"), vec![Some(true), Some(true), Some(true), None], "{:#?}", by_method["tag"].records);
    let aggregation = &by_method["handwritten"].records[3];
    assert_eq!(aggregation.predicted, Some(Answer::Str("The posts are titled Title 1 to Title 5.".into())));
    assert!(by_method["handwritten"].records[0].outcome.llm_calls >= 2, "the filter called the LLM per distinct currency");
    // Text2SQL counts every customer; its school question has no SQL: an error, counted wrong.
    assert_eq!(correct("text2sql"), vec![Some(false), Some(true), Some(false), None]);
    let failed = &by_method["text2sql"].records[2];
    assert!(failed.error.as_deref().unwrap_or("").contains("no SQL"), "{failed:?}");
    // Answers from rows: the drivers come back in the wrong order (lenient accepts
    // no order only when none is asked; this question asks for one).
    for method in ["text2sql-lm", "rag", "retrieval-rank"] {
        assert_eq!(correct(method), vec![Some(true), Some(false), Some(true), None], "{method}: {:#?}", by_method[method].records);
        assert_eq!(by_method[method].records[1].lenient, Some(false), "{method}");
    }
    assert!(by_method["rag"].summary.prompt_tokens > 0, "embedding tokens are counted");
    assert!(!llm.requests_matching("How relevant").is_empty(), "retrieval-rank scored its candidates");

    let summary = &by_method["handwritten"].summary;
    assert_eq!((summary.overall.queries, summary.overall.correct), (4, 3));
    assert!((summary.overall.accuracy - 1.0).abs() < 1e-9);
    assert_eq!(summary.by_type["Ranking"].accuracy, 1.0);
    assert_eq!(summary.by_kind["Knowledge"].queries, 2);

    // Files: one JSON per method and the paper-style tables.
    let saved = report::read_run(&out.join("text2sql.json")).unwrap();
    assert_eq!(saved.records.len(), 4);
    let table = report::markdown(&runs);
    assert!(table.contains("| text2sql | scripted-model | 4 | 0.33 (1/3)"), "{table}");
    assert!(table.contains("0.17 (Text2SQL)") && table.contains("| paper: hand-written TAG | 0.60 | 0.65 | 0.40"), "{table}");
    let comparison = report::compare(by_method["handwritten"], by_method["text2sql"]);
    assert!(comparison.contains("| 1 | Match | ✓ 2 | ✗ 5 | 2 |"), "{comparison}");

    // An interrupted run resumes: the finished query is not asked again.
    let partial = report::read_run(&out.join("text2sql.json")).unwrap().records.into_iter().next().unwrap();
    std::fs::write(out.join("text2sql.jsonl"), format!("{}\n{{\"torn", serde_json::to_string(&partial).unwrap())).unwrap();
    llm.clear_requests();
    let resumed = tagbench::run(options(vec![Method::Text2sql], false)).await.unwrap();
    assert_eq!(resumed[0].records.len(), 4);
    assert!(llm.requests_matching("^How many customers pay").is_empty(), "query 1 was not run again");
    assert_eq!(llm.requests_matching("^Which two drivers").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hand_written_plan_passes_the_checks_and_prepares() {
    let Some(schemas) = schemas_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("dbs");
    tagbench::fixtures(&schemas, &db_dir, 2).unwrap();
    let queries_file = tagbench::shared_data_dir().join("tagbench/tag_queries.csv");
    let queries = tagbench::queries::load(&queries_file).unwrap();
    let plans = tagbench::parse_plans(tagbench::PLANS).unwrap();
    let dbs = tag_bench::tagbench::schema::DATABASES.iter().map(|d| d.to_string()).collect();
    let engine = tagbench::engine(tag_server::Config::default(), &db_dir, &dbs, dir.path()).unwrap();
    let mut failures = Vec::new();
    for (id, sql) in &plans {
        let Some(query) = queries.iter().find(|q| q.id == *id) else {
            failures.push(format!("plan {id}: no such query"));
            continue;
        };
        let dataset = engine.catalog.get(&query.db).unwrap();
        if let Err(error) = engine.executor.prepare(&dataset, sql).await {
            failures.push(format!("plan {id} ({}): {error}", query.db));
        }
        // The grammar synthesis may be constrained by takes every plan.
        let grammar = dataset.sql_grammar(tag_server::synthesis::grammar::Scope::Full);
        if tag_server::synthesis::grammar::accepts(grammar, sql) != Ok(true) {
            let reach = tag_server::synthesis::grammar::reach(grammar, sql).unwrap();
            failures.push(format!("plan {id} ({}): not in the dataset's SQL grammar, from: {}", query.db, &sql[reach..]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let missing: Vec<u32> = queries.iter().map(|q| q.id).filter(|id| !plans.contains_key(id)).collect();
    assert!(missing.is_empty(), "queries without a hand-written plan: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_converts_local_copies_of_the_query_file_and_bird_databases() {
    let dir = tempfile::tempdir().unwrap();
    let bird = dir.path().join("dev_databases");
    for db in tag_bench::tagbench::schema::DATABASES {
        std::fs::create_dir_all(bird.join(db)).unwrap();
        let conn = rusqlite::Connection::open(bird.join(db).join(format!("{db}.sqlite"))).unwrap();
        conn.execute_batch("CREATE TABLE things (id integer, name text, score real); INSERT INTO things VALUES (1, 'a', 0.5), (2, 'b', NULL);").unwrap();
    }
    let queries = dir.path().join("tag_queries.csv");
    std::fs::write(&queries, QUERIES).unwrap();
    let db_dir = dir.path().join("data");
    tagbench::fetch(&db_dir, Some(&queries), Some(&bird), None).await.unwrap();
    assert_eq!(tagbench::queries::load(&db_dir.join("tag_queries.csv")).unwrap().len(), 4);
    for db in tag_bench::tagbench::schema::DATABASES {
        let conn = duckdb::Connection::open(tagbench::db::duckdb_path(&db_dir, db)).unwrap();
        let count: i64 = conn.query_row("SELECT count(*) FROM things WHERE score IS NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 1, "{db}");
        assert!(db_dir.join(format!("{db}.toml")).is_file());
    }
    // A missing database is a clear error, not a partial success.
    std::fs::remove_file(bird.join("formula_1/formula_1.sqlite")).unwrap();
    let error = tagbench::fetch(&dir.path().join("other"), Some(&queries), Some(&bird), None).await.unwrap_err();
    assert!(error.to_string().contains("formula_1.sqlite is missing"), "{error}");
}
