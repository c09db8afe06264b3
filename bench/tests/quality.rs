//! The answer-quality question set: every gold query runs on the demo datasets
//! and is in its dataset's SQL grammar; execution match compares results as it
//! says.

use serde_json::json;
use tag_bench::quality::{check_gold, matches, read_questions};
use tag_server::{
    execution::{Column, Table},
    synthesis::grammar,
    Config, DatasetSources, Engine,
};

fn questions_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("quality/questions.toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gold_query_runs_and_is_in_its_datasets_grammar() {
    let questions = read_questions(&questions_file()).unwrap();
    assert!(questions.len() >= 40, "{} questions", questions.len());
    for kind in ["count", "top1", "filter", "group", "join", "aggregate", "operator"] {
        assert!(questions.iter().any(|q| q.kind == kind), "no {kind} question");
    }
    check_gold(&questions).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data_dir = data.path().to_path_buf();
    let engine = tokio::task::block_in_place(|| Engine::with_llm(config, &DatasetSources::default(), None)).unwrap();
    for question in &questions {
        let dataset = engine.catalog.get(&question.dataset).unwrap();
        let rules = dataset.sql_grammar(grammar::Scope::Strict);
        let reach = grammar::reach(rules, &question.sql).unwrap();
        assert_eq!(grammar::accepts(rules, &question.sql), Ok(true), "{}: fails at {:?}", question.question, &question.sql[reach..]);
        // The demo datasets' verified examples are no gold question.
        assert!(!dataset.info.verified.iter().any(|e| e.question == question.question), "{} is a verified example", question.question);
    }
    for dataset in ["movies", "support"] {
        let dataset = engine.catalog.get(dataset).unwrap();
        assert!(dataset.info.verified.len() >= 5 && !dataset.info.terms.is_empty());
        for example in &dataset.info.verified {
            assert_eq!(grammar::accepts(dataset.sql_grammar(grammar::Scope::Strict), &example.sql), Ok(true), "{}", example.sql);
            engine.executor.prepare(&dataset, &example.sql).await.unwrap();
        }
    }
}

#[test]
fn execution_match_wants_every_gold_column_and_the_row_count() {
    let gold = Table {
        columns: vec![Column { name: "title".into(), data_type: "VARCHAR".into() }],
        rows: vec![vec![json!("Avatar")], vec![json!("Titanic")]],
        row_count: 2,
        truncated: false,
    };
    assert!(matches(&gold, &[vec![json!(2923.0), json!("Titanic")], vec![json!(2257.0), json!("Avatar")]]), "extra columns, other order");
    assert!(!matches(&gold, &[vec![json!("Avatar")]]), "a row missing");
    assert!(!matches(&gold, &[vec![json!("Avatar")], vec![json!("Jaws")]]), "another value");
    let average = Table {
        columns: vec![Column { name: "avg".into(), data_type: "DOUBLE".into() }],
        rows: vec![vec![json!(128.85087719298247)]],
        row_count: 1,
        truncated: false,
    };
    assert!(matches(&average, &[vec![json!(128.850877)]]), "numbers to 4 decimals");
    assert!(!matches(&average, &[vec![json!(128.9)]]));
}
