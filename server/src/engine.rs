//! The engine: everything a request needs, built once from the configuration:
//! the dataset catalog, the executor with its operator registry, the LLM (if one
//! is configured), the state store, access control and the metrics. The HTTP API
//! and the CLI are thin layers over it: requests go through [`crate::query::sql`]
//! and [`crate::ask::ask`] with the caller's [`Principal`], so datasets, budgets,
//! estimates and the audit trail hold whatever the interface.

use std::{path::PathBuf, sync::Arc};

use crate::{
    auth::{Auth, Budgets, Principal},
    catalog::{bundled, extensions, Catalog, Dataset, Listing},
    config::{BackendChoice, Config, SourceConfig},
    error::{Error, Result},
    execution::Executor,
    llm::{cache::ResponseCache, model_store, EmbeddedLlm, OpenAiClient, SharedLlm},
    metrics::Metrics,
    query::PendingAsks,
    state::{AuditEntry, StateStore},
};

pub struct Engine {
    pub config: Arc<Config>,
    pub catalog: Catalog,
    pub executor: Executor,
    pub llm: Option<SharedLlm>,
    pub state: StateStore,
    pub metrics: Metrics,
    /// The persistent response cache of operator calls; `None` when disabled.
    pub cache: Option<Arc<ResponseCache>>,
    pub auth: Auth,
    pub budgets: Arc<Budgets>,
    /// Questions whose query waits for the client's confirmation of its estimate.
    pub pending: PendingAsks,
}

/// Where datasets come from, besides the configuration's folders and sources.
#[derive(Debug, Default, Clone)]
pub struct DatasetSources {
    /// Extra datasets: folders, DuckDB or SQLite files, given on the command line.
    pub paths: Vec<PathBuf>,
    /// Databases given on the command line as `[NAME=]URL` (`--dataset-url`).
    pub urls: Vec<String>,
}

impl Engine {
    /// Builds the engine from `config` with the LLM the configuration names: an
    /// OpenAI-compatible server when `llm.base_url` is set, else the embedded engine
    /// (whose model is prepared on first use, or when `serve` calls `prepare`).
    pub fn new(config: Config, sources: &DatasetSources) -> Result<Self> {
        let llm: Option<SharedLlm> = match config.backend() {
            BackendChoice::Openai => Some(Arc::new(OpenAiClient::new(&config.llm)?)),
            BackendChoice::Embedded => {
                let model_dir = model_store::model_dir(config.llm.model_dir.as_deref(), &config.data_dir);
                Some(Arc::new(EmbeddedLlm::new(config.llm.clone(), model_dir)))
            }
            BackendChoice::None | BackendChoice::Auto => None,
        };
        Self::with_llm(config, sources, llm)
    }

    /// Builds the engine with the given LLM backend.
    pub fn with_llm(config: Config, sources: &DatasetSources, llm: Option<SharedLlm>) -> Result<Self> {
        let config = Arc::new(config);
        let cache = match config.cache.enabled {
            true => Some(Arc::new(ResponseCache::open(&config.data_dir.join("cache.sqlite3"), config.cache.max_entries)?)),
            false => None,
        };
        let executor = Executor::new(config.clone(), cache.clone());
        let extension_dir = extensions::cache_dir(config.extension_dir.as_deref(), &config.data_dir);
        let mut catalog = Catalog::new(executor.attach(), extension_dir, config.query.timeout_secs);
        if config.bundled_datasets {
            catalog.load_dir(&bundled::materialize(&config.data_dir)?)?;
        }
        if let Some(dir) = &config.datasets_dir {
            if !dir.is_dir() {
                return Err(Error::Config(format!("datasets_dir (TAG_DATASETS_DIR) {} is not a folder", dir.display())));
            }
            catalog.load_dir(dir)?;
        }
        for path in &sources.paths {
            if !path.exists() {
                return Err(Error::Config(format!("dataset path {} does not exist", path.display())));
            }
            catalog.load(path)?;
        }
        for (name, source) in &config.sources {
            catalog.add_source(name, source.clone())?;
        }
        for spec in &sources.urls {
            let (name, source) = SourceConfig::from_url(spec)?;
            catalog.add_source(&name, source)?;
        }
        let state = StateStore::open(&config.data_dir)?;
        let auth = Auth::new(&config.auth, &config.data_dir)?;
        let spent = state.clone();
        let budgets = Arc::new(Budgets::new(Box::new(move |token, since| spent.tokens_spent_since(token, since))));
        Ok(Engine {
            config,
            catalog,
            executor,
            llm,
            state,
            metrics: Metrics::default(),
            cache,
            auth,
            budgets,
            pending: PendingAsks::default(),
        })
    }

    /// A dataset the principal may use; one it may not is "not found", exactly as
    /// a dataset that does not exist, so its name does not leak.
    pub fn dataset_for(&self, principal: &Principal, name: &str) -> Result<Arc<Dataset>> {
        if !principal.may_use(name) {
            return Err(Error::not_found("dataset", name));
        }
        self.catalog.get(name)
    }

    /// The datasets the principal may use, in name order.
    pub fn datasets_for(&self, principal: &Principal) -> Vec<Listing> {
        self.catalog.list().into_iter().filter(|listing| principal.may_use(listing.name())).collect()
    }

    /// Appends to the audit trail; a failure to write it is logged, and never
    /// changes the request's answer.
    pub async fn audit(&self, principal: &Principal, mut entry: AuditEntry) {
        entry.principal = principal.name.clone();
        entry.token_id = principal.token.clone();
        if let Err(e) = self.state.record_audit(entry).await {
            tracing::error!(error = %e, "cannot write the audit trail");
        }
    }

    /// Keeps the database sources fresh while the server runs: an unavailable one is
    /// attached again every few seconds until its database answers, and a source
    /// with `refresh_secs` is re-read that often (schema changes).
    pub fn supervise_sources(self: &Arc<Self>) {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else { return };
                for name in engine.catalog.due(std::time::Duration::from_secs(5)) {
                    let engine = engine.clone();
                    let reloaded = tokio::task::spawn_blocking(move || engine.catalog.reload(&name)).await;
                    if let Ok(Err(e)) = reloaded {
                        tracing::warn!(error = %e, "cannot reload a dataset");
                    }
                }
            }
        });
    }

    /// A query's error, or, when it says the dataset's database stopped answering,
    /// the dataset marked unavailable (attached again once it answers) and the
    /// unavailable error.
    pub fn query_failure(&self, dataset: &Dataset, error: Error) -> Error {
        let Error::Sql { message, .. } = &error else { return error };
        if dataset.source == "files" || dataset.source == "duckdb" || !is_connection_failure(message) {
            return error;
        }
        let reason = format!("its database stopped answering ({})", crate::text::shorten(message, 200));
        self.catalog.mark_unavailable(&dataset.info.name, reason.clone());
        Error::Unavailable { name: dataset.info.name.clone(), reason }
    }

    /// The LLM, or a clear error naming what to configure.
    pub fn require_llm(&self) -> Result<SharedLlm> {
        self.llm.clone().ok_or_else(|| {
            Error::LlmNotConfigured(
                "questions need an LLM, and llm.backend (TAG_LLM_BACKEND) is none. Unset it to use the embedded model, \
or set TAG_LLM_BASE_URL to an OpenAI-compatible endpoint ending in /v1 (OpenAI, Ollama, vLLM, llama.cpp server), \
TAG_LLM_MODEL to its model name and, if it needs one, TAG_LLM_API_KEY"
                    .into(),
            )
        })
    }
}

/// Whether a DuckDB error message is a database source's connection failing (not a
/// mistake in the query).
fn is_connection_failure(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "connection refused",
        "could not connect",
        "server closed the connection",
        "terminating connection",
        "connection to server",
        "lost connection",
        "can't connect",
        "no connection to the server",
        "broken pipe",
        "connection reset",
        "unable to connect",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}
