//! Results of a run: one record per query (JSON Lines while running, so an
//! interrupted run resumes), the summary the paper reports (exact-match accuracy
//! per query type, per knowledge/reasoning type and over the 60 answerable queries;
//! latency over all queries), a Markdown table laid out like the paper's Tables 1
//! and 2 with the paper's numbers beside ours, and the comparison of two runs.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    answer::{self, Answer},
    methods::Outcome,
    queries::Query,
};

/// One query's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: u32,
    pub db: String,
    pub query_type: String,
    pub kind: String,
    pub question: String,
    pub gold: Option<Answer>,
    pub predicted: Option<Answer>,
    /// The official rule (typed equality, lists in order); `None` for aggregation.
    pub correct: Option<bool>,
    /// Not the paper's metric: case/whitespace-insensitive, lists unordered when the
    /// question asks for no order.
    pub lenient: Option<bool>,
    pub error: Option<String>,
    pub seconds: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Record {
    pub fn new(query: &Query, result: Result<Outcome>, seconds: f64) -> Record {
        let (outcome, error) = match result {
            Ok(outcome) => (outcome, None),
            Err(error) => (Outcome::default(), Some(format!("{error:#}"))),
        };
        let predicted = match (&query.gold, &error) {
            (_, Some(_)) => None,
            (Some(gold), None) => answer::parse_predicted(&outcome.answer_text, gold),
            (None, None) => Some(Answer::Str(outcome.answer_text.trim().to_string())),
        };
        let score = |rule: &dyn Fn(&Answer, &Answer) -> bool| {
            query.gold.as_ref().map(|gold| predicted.as_ref().is_some_and(|p| rule(p, gold)))
        };
        let ordered = answer::asks_for_order(&query.question);
        Record {
            id: query.id,
            db: query.db.clone(),
            query_type: query.query_type.clone(),
            kind: query.kind.clone(),
            question: query.question.clone(),
            gold: query.gold.clone(),
            correct: score(&|p, g| answer::exact(p, g)),
            lenient: score(&|p, g| answer::lenient(p, g, ordered)),
            predicted,
            error,
            seconds,
            outcome,
        }
    }
}

/// A whole run, as written to `<out>/<method>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub method: String,
    pub model: String,
    pub records: Vec<Record>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Group {
    pub queries: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub lenient_accuracy: f64,
    pub mean_seconds: f64,
    pub p50_seconds: f64,
    pub p95_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Accuracy over the answerable queries; latency over all.
    pub overall: Group,
    pub by_type: BTreeMap<String, Group>,
    pub by_kind: BTreeMap<String, Group>,
    pub errors: usize,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub cached_prompt_tokens: u64,
    pub completion_tokens: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn group<'a>(records: impl Iterator<Item = &'a Record>) -> Group {
    let records: Vec<&Record> = records.collect();
    let mut seconds: Vec<f64> = records.iter().map(|r| r.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let scored: Vec<&&Record> = records.iter().filter(|r| r.correct.is_some()).collect();
    let correct = scored.iter().filter(|r| r.correct == Some(true)).count();
    let lenient = scored.iter().filter(|r| r.lenient == Some(true)).count();
    let share = |n: usize| if scored.is_empty() { 0.0 } else { n as f64 / scored.len() as f64 };
    Group {
        queries: records.len(),
        correct,
        accuracy: share(correct),
        lenient_accuracy: share(lenient),
        mean_seconds: if seconds.is_empty() { 0.0 } else { seconds.iter().sum::<f64>() / seconds.len() as f64 },
        p50_seconds: percentile(&seconds, 0.5),
        p95_seconds: percentile(&seconds, 0.95),
    }
}

pub fn summarize(records: &[Record]) -> Summary {
    let mut summary = Summary { overall: group(records.iter()), ..Summary::default() };
    for record in records {
        summary.llm_calls += record.outcome.llm_calls;
        summary.prompt_tokens += record.outcome.usage.prompt_tokens;
        summary.cached_prompt_tokens += record.outcome.usage.cached_prompt_tokens;
        summary.completion_tokens += record.outcome.usage.completion_tokens;
        summary.errors += usize::from(record.error.is_some());
    }
    for query_type in records.iter().map(|r| r.query_type.clone()).collect::<std::collections::BTreeSet<_>>() {
        summary.by_type.insert(query_type.clone(), group(records.iter().filter(|r| r.query_type == query_type)));
    }
    // The paper's Table 2 splits the answerable (non-aggregation) queries.
    for kind in records.iter().map(|r| r.kind.clone()).collect::<std::collections::BTreeSet<_>>() {
        summary.by_kind.insert(kind.clone(), group(records.iter().filter(|r| r.kind == kind && r.gold.is_some())));
    }
    summary
}

/// The paper's Table 1 (Llama-3.1-70B-Instruct): accuracy over the 60 answerable
/// queries and mean seconds over all 80, plus Table 2's per-type accuracy for
/// hand-written TAG.
pub const PAPER: &[(&str, f64, f64)] = &[
    ("Text2SQL", 0.17, 5.63),
    ("RAG", 0.00, 3.23),
    ("Retrieval + LM Rank", 0.02, 4.82),
    ("Text2SQL + LM", 0.13, 9.08),
    ("Hand-written TAG", 0.55, 2.94),
];
pub const PAPER_HANDWRITTEN_BY_GROUP: &[(&str, f64)] =
    &[("Match", 0.60), ("Comparison", 0.65), ("Ranking", 0.40), ("Knowledge", 0.53), ("Reasoning", 0.60)];

fn paper_row(method: &str) -> Option<&'static str> {
    Some(match method {
        "text2sql" => "Text2SQL",
        "rag" => "RAG",
        "retrieval-rank" => "Retrieval + LM Rank",
        "text2sql-lm" => "Text2SQL + LM",
        "handwritten" | "tag" => "Hand-written TAG",
        _ => return None,
    })
}

/// Tables 1 and 2 of the paper, with our runs beside the paper's numbers.
pub fn markdown(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Table 1: exact-match accuracy (answerable queries) and mean latency (all queries)\n");
    let _ = writeln!(out, "| method | model | queries | accuracy | lenient* | mean s | p50 s | p95 s | errors | LLM calls | prompt tok | cached tok | paper accuracy | paper s |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let s = &run.summary;
        let paper = paper_row(&run.method).and_then(|name| PAPER.iter().find(|p| p.0 == name));
        let (paper_accuracy, paper_seconds) =
            paper.map(|p| (format!("{:.2} ({})", p.1, p.0), format!("{:.2}", p.2))).unwrap_or(("–".into(), "–".into()));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} ({}/{}) | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
            run.method,
            run.model,
            s.overall.queries,
            s.overall.accuracy,
            s.overall.correct,
            run.records.iter().filter(|r| r.correct.is_some()).count(),
            s.overall.lenient_accuracy,
            s.overall.mean_seconds,
            s.overall.p50_seconds,
            s.overall.p95_seconds,
            s.errors,
            s.llm_calls,
            s.prompt_tokens,
            s.cached_prompt_tokens,
            paper_accuracy,
            paper_seconds
        );
    }
    let _ = writeln!(out, "\n### Table 2: accuracy per query type and per knowledge/reasoning type\n");
    let groups = ["Match", "Comparison", "Ranking", "Aggregation", "Knowledge", "Reasoning"];
    let _ = writeln!(out, "| method | {} |", groups.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(groups.len()));
    for run in runs {
        let cells: Vec<String> = groups
            .iter()
            .map(|g| {
                let group = run.summary.by_type.get(*g).or_else(|| run.summary.by_kind.get(*g));
                match (g, group) {
                    (&"Aggregation", Some(group)) => format!("n/a ({} answers, {:.2} s)", group.queries, group.mean_seconds),
                    (_, Some(group)) => format!("{:.2}", group.accuracy),
                    (_, None) => "–".into(),
                }
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", run.method, cells.join(" | "));
    }
    let paper: Vec<String> = groups
        .iter()
        .map(|g| PAPER_HANDWRITTEN_BY_GROUP.iter().find(|p| p.0 == *g).map(|p| format!("{:.2}", p.1)).unwrap_or("–".into()))
        .collect();
    let _ = writeln!(out, "| paper: hand-written TAG | {} |", paper.join(" | "));
    let _ = writeln!(out, "\n*lenient is not the paper's metric: case/whitespace-insensitive, numbers by value, lists unordered unless the question asks for an order.");
    out
}

/// Per-query differences between two runs: which queries one got right and the
/// other not, and the summary lines side by side.
pub fn compare(a: &Run, b: &Run) -> String {
    let mut out = markdown(&[a.clone(), b.clone()]);
    let _ = writeln!(out, "\n### Queries that differ ({} vs {})\n", a.method, b.method);
    let _ = writeln!(out, "| id | type | {} | {} | gold |", a.method, b.method);
    let _ = writeln!(out, "|---|---|---|---|---|");
    let show = |r: &Record| match (&r.error, &r.predicted) {
        (Some(e), _) => format!("error: {}", e.chars().take(60).collect::<String>()),
        (None, Some(p)) => format!("{} {}", if r.correct == Some(true) { "✓" } else { "✗" }, p.display()),
        (None, None) => "✗ (unreadable)".into(),
    };
    for left in &a.records {
        let Some(right) = b.records.iter().find(|r| r.id == left.id) else { continue };
        if left.correct != right.correct {
            let gold = left.gold.as_ref().map(Answer::display).unwrap_or_default();
            let _ = writeln!(out, "| {} | {} | {} | {} | {} |", left.id, left.query_type, show(left), show(right), gold);
        }
    }
    out
}

pub fn read_run(path: &Path) -> Result<Run> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a tagbench run", path.display()))
}

/// Records already written by an interrupted run (JSON Lines), skipping a torn
/// last line.
pub fn read_partial(path: &Path) -> Vec<Record> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}
