//! `tagbench quality`: execution accuracy of the SQL the server writes for the
//! questions of `bench/quality/questions.toml` (the demo datasets, each question
//! with a gold query), one row per step of the answer-quality work, all in one run
//! with the same model and questions. The steps are cumulative:
//!
//! - `baseline`: the prompt alone (no examples, no grammar, one candidate);
//! - `examples`: + the verified examples nearest the question, and business terms;
//! - `grammar`: + SQL constrained by the dataset's grammar;
//! - `candidates`: + execution-guided choice among several candidates.
//!
//! A question scores when the server's result holds every gold column's values
//! (numbers to 4 decimals, in any column order; extra columns allowed) with as
//! many rows. The answers (stage 3) are not part of that score (the SQL rows ask
//! for a 1-token answer); the `answers` part compares, on the gold results, the
//! old answer settings (greedy, 1,024 tokens) with the new (DRY penalty, 400
//! tokens, stop at the first repeat, degenerate answers replaced): time, tokens
//! and answers that loop or miss the result's value.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tag_server::{
    ask::{self, AskRequest, Events},
    auth::Principal,
    config::SqlGrammar,
    execution::{values::cell_text, QueryOptions, Table},
    generation,
    llm::{ChatRequest, SharedLlm},
    Config, DatasetSources, Engine,
};

#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    pub dataset: String,
    pub kind: String,
    pub question: String,
    pub sql: String,
}

#[derive(Deserialize)]
struct QuestionFile {
    question: Vec<Question>,
}

pub fn read_questions(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(toml::from_str::<QuestionFile>(&text).with_context(|| format!("{} is not a question file", path.display()))?.question)
}

/// SQL candidates written in the `candidates` step.
const CANDIDATES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Baseline,
    Examples,
    Grammar,
    Candidates,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Baseline, Step::Examples, Step::Grammar, Step::Candidates];

    /// `config` with this step's settings (and the earlier steps').
    fn configure(self, config: &mut Config) {
        let grammar = match config.llm.sql_grammar {
            SqlGrammar::Grammar | SqlGrammar::GuidedGrammar => config.llm.sql_grammar,
            SqlGrammar::Auto | SqlGrammar::Off => SqlGrammar::Auto,
        };
        config.query.examples = if self == Step::Baseline { 0 } else { 3 };
        config.llm.sql_grammar = if matches!(self, Step::Grammar | Step::Candidates) { grammar } else { SqlGrammar::Off };
        config.query.candidates = if self == Step::Candidates { CANDIDATES } else { 1 };
    }
}

/// One question's outcome in one step.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub question: String,
    pub sql: Option<String>,
    pub correct: bool,
    pub seconds: f64,
    pub error: Option<String>,
    pub candidates_ran: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: Step,
    pub correct: usize,
    pub questions: usize,
    pub seconds_per_question: f64,
    /// Correct answers per kind of question.
    pub by_kind: BTreeMap<String, (usize, usize)>,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AnswerSide {
    pub seconds: f64,
    pub completion_tokens: u64,
    /// Answers that repeat a sentence, are empty, or miss a one-value result's value.
    pub degenerate: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnswerReport {
    pub questions: usize,
    pub before: AnswerSide,
    /// The new settings; `degenerate` counts the answers replaced by one built from
    /// the result (after the stop at the first repeat).
    pub after: AnswerSide,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub backend: String,
    pub model: String,
    pub steps: Vec<StepReport>,
    pub answers: Option<AnswerReport>,
}

pub struct Options<'a> {
    pub questions: &'a Path,
    pub steps: Vec<Step>,
    /// The first this many questions (0: all).
    pub limit: usize,
    /// Questions whose answers are compared (0: none).
    pub answer_questions: usize,
}

pub async fn run(options: Options<'_>) -> Result<Report> {
    let mut questions = read_questions(options.questions)?;
    if options.limit > 0 {
        questions.truncate(options.limit);
    }
    let data = tempfile::tempdir()?;
    let mut base = Config::load(None)?;
    base.data_dir = data.path().to_path_buf();
    base.bundled_datasets = true;
    base.query.answer_rows = 100_000;
    base.query.timeout_secs = 3600;
    base.llm.answer_max_tokens = 1;
    let first = tokio::task::block_in_place(|| Engine::new(base.clone(), &DatasetSources::default()))?;
    let llm = first.require_llm()?;
    // Each gold result once, for every step and the answers.
    let mut gold = Vec::new();
    for question in &questions {
        gold.push(gold_table(&first, &llm, question).await?);
    }
    let mut steps = Vec::new();
    for step in options.steps {
        let mut config = base.clone();
        step.configure(&mut config);
        let engine = tokio::task::block_in_place(|| Engine::with_llm(config, &DatasetSources::default(), Some(llm.clone())))?;
        steps.push(run_step(&engine, step, &questions, &gold).await?);
        let done = steps.last().expect("just pushed");
        eprintln!("{:<11} {}/{} correct, {:.1} s/question", format!("{step:?}"), done.correct, done.questions, done.seconds_per_question);
    }
    let answers = match options.answer_questions {
        0 => None,
        n => {
            let n = n.min(questions.len());
            Some(compare_answers(&first, &llm, &questions[..n], &gold[..n]).await?)
        }
    };
    Ok(Report { backend: llm.backend().to_string(), model: llm.model().to_string(), steps, answers })
}

async fn run_step(engine: &Engine, step: Step, questions: &[Question], gold: &[Table]) -> Result<StepReport> {
    let mut outcomes = Vec::new();
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (question, gold) in questions.iter().zip(gold) {
        let started = Instant::now();
        let request = AskRequest {
            dataset: question.dataset.clone(),
            question: question.question.clone(),
            conversation_id: None,
            confirm: false,
            estimate_id: None,
        };
        let asked = ask::ask(engine, &Principal::console(), "bench", request, Events::default()).await;
        let seconds = started.elapsed().as_secs_f64();
        let outcome = match asked {
            Ok(response) => Outcome {
                question: question.question.clone(),
                correct: response.sql.is_some() && matches(gold, &response.rows),
                sql: response.sql,
                seconds,
                error: None,
                candidates_ran: response.stats.synthesis.candidates_ran,
            },
            Err(e) => Outcome {
                question: question.question.clone(),
                sql: None,
                correct: false,
                seconds,
                error: Some(e.to_string()),
                candidates_ran: 0,
            },
        };
        let kind = by_kind.entry(question.kind.clone()).or_default();
        kind.0 += outcome.correct as usize;
        kind.1 += 1;
        outcomes.push(outcome);
    }
    let correct = outcomes.iter().filter(|o| o.correct).count();
    let seconds_per_question = outcomes.iter().map(|o| o.seconds).sum::<f64>() / outcomes.len().max(1) as f64;
    Ok(StepReport { step, correct, questions: outcomes.len(), seconds_per_question, by_kind, outcomes })
}

async fn gold_table(engine: &Engine, llm: &SharedLlm, question: &Question) -> Result<Table> {
    let dataset = engine.catalog.get(&question.dataset)?;
    let options = QueryOptions { max_rows: 100_000, llm: Some(llm.clone()), progress: None, token_budget: None };
    let (_, table, _) =
        engine.executor.run_table(&dataset, &question.sql, options).await.with_context(|| format!("gold SQL of {:?}", question.question))?;
    Ok(table)
}

/// A cell as compared: numbers to 4 decimals, text as is.
fn normal(value: &Value) -> String {
    match value.as_f64() {
        Some(number) => format!("{:.4}", number),
        None => cell_text(value),
    }
}

/// Whether `rows` hold each of `gold`'s columns (as a multiset of values, each in
/// its own column of `rows`) with as many rows.
pub fn matches(gold: &Table, rows: &[Vec<Value>]) -> bool {
    if gold.rows.len() != rows.len() {
        return false;
    }
    if rows.is_empty() {
        return true;
    }
    let column = |table: &[Vec<Value>], i: usize| {
        let mut values: Vec<String> = table.iter().map(|row| row.get(i).map(normal).unwrap_or_default()).collect();
        values.sort();
        values
    };
    let width = rows[0].len();
    let candidates: Vec<Vec<String>> = (0..width).map(|i| column(rows, i)).collect();
    let mut used = vec![false; width];
    (0..gold.columns.len()).all(|g| {
        let wanted = column(&gold.rows, g);
        match (0..width).find(|&i| !used[i] && candidates[i] == wanted) {
            Some(i) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

/// The answers to the gold results: the old settings against the new.
async fn compare_answers(engine: &Engine, llm: &SharedLlm, questions: &[Question], gold: &[Table]) -> Result<AnswerReport> {
    let mut before = AnswerSide::default();
    let mut after = AnswerSide::default();
    let mut config = engine.config.as_ref().clone();
    config.llm.answer_max_tokens = tag_server::Config::default().llm.answer_max_tokens;
    for (question, table) in questions.iter().zip(gold) {
        if table.row_count == 0 {
            bail!("the gold result of {:?} is empty", question.question);
        }
        let started = Instant::now();
        let request =
            ChatRequest::new(generation::messages(&question.question, &question.sql, table, config.query.answer_table_chars), 1024);
        let old = llm.complete(&request).await?;
        before.seconds += started.elapsed().as_secs_f64();
        before.completion_tokens += old.usage.completion_tokens;
        before.degenerate += generation::degenerate(old.text.trim(), table).is_some() as usize;
        let started = Instant::now();
        let (answer, totals) = ask::write_answer(llm.as_ref(), &config, &question.question, &question.sql, table, |_| {}).await?;
        after.seconds += started.elapsed().as_secs_f64();
        after.completion_tokens += totals.usage.completion_tokens;
        after.degenerate += answer.fallback.is_some() as usize;
    }
    Ok(AnswerReport { questions: questions.len(), before, after })
}

impl Report {
    pub fn table(&self) -> String {
        let mut text = format!("Execution accuracy, {} ({}):\n", self.model, self.backend);
        text.push_str(&format!("{:<11} {:>9} {:>10}  by kind\n", "step", "correct", "s/question"));
        for step in &self.steps {
            let kinds: Vec<String> = step.by_kind.iter().map(|(k, (c, n))| format!("{k} {c}/{n}")).collect();
            text.push_str(&format!(
                "{:<11} {:>4}/{:<4} {:>10.1}  {}\n",
                format!("{:?}", step.step).to_lowercase(),
                step.correct,
                step.questions,
                step.seconds_per_question,
                kinds.join(", ")
            ));
        }
        if let Some(answers) = &self.answers {
            text.push_str(&format!("\nAnswers to {} gold results:\n", answers.questions));
            for (name, side) in [("before", &answers.before), ("after", &answers.after)] {
                text.push_str(&format!(
                    "{name:<7} {:>7.1} s/answer {:>7.0} tokens/answer  degenerate {}/{}\n",
                    side.seconds / answers.questions.max(1) as f64,
                    side.completion_tokens as f64 / answers.questions.max(1) as f64,
                    side.degenerate,
                    answers.questions
                ));
            }
        }
        text
    }
}

/// Checks a question file: every gold query prepares on the demo datasets, and
/// each without LLM operators (which need an LLM) runs and returns rows.
pub async fn check_gold(questions: &[Question]) -> Result<()> {
    let data = tempfile::tempdir()?;
    let mut config = Config::default();
    config.data_dir = data.path().to_path_buf();
    let engine = Arc::new(tokio::task::block_in_place(|| Engine::with_llm(config, &DatasetSources::default(), None))?);
    for question in questions {
        let dataset = engine.catalog.get(&question.dataset)?;
        let prepared = engine.executor.prepare(&dataset, &question.sql).await?;
        if prepared.checked.operators.is_empty() {
            let (_, table, _) = engine.executor.run_table(&dataset, &question.sql, QueryOptions::default()).await?;
            if table.row_count == 0 {
                bail!("the gold query of {:?} returns no rows", question.question);
            }
        }
    }
    Ok(())
}
