//! tag-server: table-augmented generation over DuckDB. A question goes through
//! three stages: [`synthesis`] (an LLM writes SQL that may call LLM operators),
//! [`execution`] (DuckDB runs it; the operators call the LLM from their callbacks)
//! and [`generation`] (the LLM answers from the result). [`sql`] checks and rewrites
//! the SQL in between, [`operators`] is the LLM operators' contract (what each
//! takes, returns, asks and accepts) that both sides share, [`catalog`] loads the
//! datasets, [`llm`] talks to models, [`state`] keeps conversations, [`ask`] runs the
//! stages for one question, [`query`] runs one SQL request, [`auth`] says who may
//! ask what, and [`api`] serves it all over HTTP ([`pg`]: over PostgreSQL's wire
//! protocol).

pub mod api;
pub mod ask;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod execution;
pub mod generation;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod operators;
pub mod pg;
pub mod query;
pub mod reorder;
pub mod sql;
pub mod state;
pub mod synthesis;
mod text;
pub mod wheels;

pub use config::Config;
pub use engine::{DatasetSources, Engine};
pub use error::{Error, Result};
