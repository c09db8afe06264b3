//! The engine: everything a request needs, built once from the configuration:
//! the dataset catalog, the executor with its operator registry, the LLM (if one
//! is configured), the state store and the metrics. The HTTP API and the CLI are
//! thin layers over it.

use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::{
    catalog::{bundled, Catalog},
    config::{BackendChoice, Config},
    error::{Error, Result},
    execution::{Executor, OperatorSettings, QueryRegistry},
    llm::{cache::ResponseCache, embedded::EmbeddedSettings, EmbeddedLlm, OpenAiClient, SharedLlm},
    metrics::Metrics,
    state::StateStore,
};

pub struct Engine {
    pub config: Config,
    pub catalog: Catalog,
    pub executor: Executor,
    pub llm: Option<SharedLlm>,
    pub state: StateStore,
    pub metrics: Metrics,
    /// The persistent response cache of operator calls; `None` when disabled.
    pub cache: Option<Arc<ResponseCache>>,
}

/// Where datasets come from, besides the configuration's folders.
#[derive(Debug, Default, Clone)]
pub struct DatasetSources {
    /// Extra datasets: folders or DuckDB files, given on the command line.
    pub paths: Vec<PathBuf>,
}

impl Engine {
    /// Builds the engine from `config` with the LLM the configuration names: an
    /// OpenAI-compatible server when `llm.base_url` is set, else the embedded engine
    /// (whose model is prepared on first use, or when `serve` calls `prepare`).
    pub fn new(config: Config, sources: &DatasetSources) -> Result<Self> {
        let llm: Option<SharedLlm> = match config.backend() {
            BackendChoice::Openai => Some(Arc::new(OpenAiClient::new(&config.llm)?)),
            BackendChoice::Embedded => {
                let settings = EmbeddedSettings::from_config(&config.llm, &config.data_dir);
                Some(Arc::new(EmbeddedLlm::new(settings)))
            }
            BackendChoice::None | BackendChoice::Auto => None,
        };
        Self::with_llm(config, sources, llm)
    }

    /// Builds the engine with the given LLM backend.
    pub fn with_llm(config: Config, sources: &DatasetSources, llm: Option<SharedLlm>) -> Result<Self> {
        let registry = Arc::new(QueryRegistry::default());
        let mut catalog = Catalog::default();
        if config.bundled_datasets {
            catalog.load_dir(&bundled::materialize(&config.data_dir)?, &registry)?;
        }
        if let Some(dir) = &config.datasets_dir {
            if !dir.is_dir() {
                return Err(Error::Config(format!("datasets_dir (TAG_DATASETS_DIR) {} is not a folder", dir.display())));
            }
            catalog.load_dir(dir, &registry)?;
        }
        for path in &sources.paths {
            if !path.exists() {
                return Err(Error::Config(format!("dataset path {} does not exist", path.display())));
            }
            catalog.load(path, &registry)?;
        }
        let cache = match config.cache.enabled {
            true => Some(Arc::new(ResponseCache::open(&config.data_dir.join("cache.sqlite3"), config.cache.max_entries)?)),
            false => None,
        };
        let settings = OperatorSettings {
            max_tokens: config.llm.operator_max_tokens,
            rank_window: config.query.rank_window,
            reduce_chunk_chars: config.query.answer_table_chars,
            cache: cache.clone(),
            reorder: config.query.reorder,
            collect_inputs: config.query.collect_inputs,
        };
        let executor = Executor::new(registry, settings, Duration::from_secs(config.query.timeout_secs));
        let state = StateStore::open(&config.data_dir)?;
        Ok(Engine { config, catalog, executor, llm, state, metrics: Metrics::default(), cache })
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
