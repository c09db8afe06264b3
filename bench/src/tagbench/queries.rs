//! The TAG-Bench query file (`tag_queries.csv`): ID, database, question, the
//! Text2SQL baseline's input, query type, knowledge/reasoning type and the gold
//! answer. Read with the csv crate, so quoted multi-line answers survive.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::answer::Answer;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Query {
    pub id: u32,
    pub db: String,
    pub question: String,
    /// The question the paper's Text2SQL + LM baseline turns into SQL (the data
    /// needed, without the semantic part).
    pub text2sql_input: String,
    /// Match, Comparison, Ranking or Aggregation.
    pub query_type: String,
    /// Knowledge or Reasoning.
    pub kind: String,
    pub gold: Option<Answer>,
}

#[derive(Deserialize)]
struct Row {
    #[serde(rename = "Query ID")]
    id: String,
    #[serde(rename = "DB used")]
    db: String,
    #[serde(rename = "Query")]
    question: String,
    #[serde(rename = "(TAG baseline) Text2SQL Input")]
    text2sql_input: String,
    #[serde(rename = "Query type")]
    query_type: String,
    #[serde(rename = "Knowledge/Reasoning Type")]
    kind: String,
    #[serde(rename = "Answer")]
    answer: String,
}

pub const QUERY_TYPES: [&str; 4] = ["Match", "Comparison", "Ranking", "Aggregation"];

/// Loads and checks the query file.
pub fn load(path: &Path) -> Result<Vec<Query>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read the query file {}", path.display()))?;
    let mut queries = Vec::new();
    for (line, row) in reader.deserialize::<Row>().enumerate() {
        let row = row.with_context(|| format!("{}: record {}", path.display(), line + 1))?;
        let id = row.id.parse().with_context(|| format!("{}: query ID {:?} is not a number", path.display(), row.id))?;
        if !QUERY_TYPES.contains(&row.query_type.as_str()) {
            bail!("{}: query {id} has an unknown query type {:?}", path.display(), row.query_type);
        }
        queries.push(Query {
            id,
            db: row.db,
            question: row.question,
            text2sql_input: row.text2sql_input,
            query_type: row.query_type,
            kind: row.kind,
            gold: Answer::parse_gold(&row.answer),
        });
    }
    if queries.is_empty() {
        bail!("{} has no queries", path.display());
    }
    Ok(queries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_multi_line_answers_and_types_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        std::fs::write(
            &path,
            "Query ID,DB used,Query,(TAG baseline) Text2SQL Input,Query type,Knowledge/Reasoning Type,Answer\n\
             0,california_schools,\"How many, in the bay area?\",List schools,Match,Knowledge,54\n\
             53,codebase_community,Which comment?,List comments,Ranking,Reasoning,\"\"\"That chart\nis cooked\"\"\"\n\
             5,california_schools,Two names?,List names,Match,Knowledge,\" ['Jennifer', 'Lisa'] \"\n\
             81,formula_1,Summarize,List races,Aggregation,Reasoning,\n",
        )
        .unwrap();
        let queries = load(&path).unwrap();
        assert_eq!(queries.len(), 4);
        assert_eq!(queries[0].question, "How many, in the bay area?");
        assert_eq!(queries[0].gold, Some(Answer::Int(54)));
        assert_eq!(queries[1].gold, Some(Answer::Str("That chart\nis cooked".into())));
        assert_eq!(queries[2].gold, Some(Answer::List(vec![Answer::Str("Jennifer".into()), Answer::Str("Lisa".into())])));
        assert_eq!((queries[3].query_type.as_str(), &queries[3].gold), ("Aggregation", &None));

        std::fs::write(&path, "Query ID,DB used,Query,(TAG baseline) Text2SQL Input,Query type,Knowledge/Reasoning Type,Answer\nx,db,q,q,Match,Knowledge,1\n").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("is not a number"));
    }

    #[test]
    fn the_official_query_file_loads_when_present() {
        let path = super::super::shared_data_dir().join("tagbench/tag_queries.csv");
        if !path.is_file() {
            eprintln!("skipping: {} is not here", path.display());
            return;
        }
        let queries = load(&path).unwrap();
        assert_eq!(queries.len(), 80);
        for query_type in QUERY_TYPES {
            assert_eq!(queries.iter().filter(|q| q.query_type == query_type).count(), 20, "{query_type}");
        }
        assert_eq!(queries.iter().filter(|q| q.gold.is_some()).count(), 60);
        let q53 = queries.iter().find(|q| q.id == 53).unwrap();
        assert!(matches!(&q53.gold, Some(Answer::Str(s)) if s.contains('\n')), "{:?}", q53.gold);
    }
}
