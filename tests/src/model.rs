//! The real small model for the embedded-engine tests: the product's own default
//! (SmolLM2-135M-Instruct Q4_1), fetched once into the user's model cache by the
//! product's own download code. `.ci/run` fetches it beforehand and sets
//! `TAG_REQUIRE_MODEL=1`, so that in CI a missing model fails instead of skipping.

use std::path::PathBuf;

use tag_server::llm::model_store;

/// The default model's path, or `None` (after a loud message) when it cannot be
/// obtained here. Panics instead when `TAG_REQUIRE_MODEL=1`.
pub async fn default_model() -> Option<PathBuf> {
    static MODEL: tokio::sync::OnceCell<Option<PathBuf>> = tokio::sync::OnceCell::const_new();
    MODEL.get_or_init(fetch).await.clone()
}

async fn fetch() -> Option<PathBuf> {
    let fallback = std::env::temp_dir().join("tag-tests-data");
    let dir = model_store::model_dir(None, &fallback);
    let index = model_store::DEFAULT_INDEX_URL;
    match model_store::ensure_default(&dir, index, |_| {}).await {
        Ok(path) => Some(path),
        Err(e) if std::env::var("TAG_REQUIRE_MODEL").as_deref() == Ok("1") => {
            panic!("TAG_REQUIRE_MODEL=1 but the default model cannot be obtained: {e}")
        }
        Err(e) => {
            eprintln!("\n!!!!! SKIPPED: the embedded-model test needs the default model and it cannot be obtained: {e}\n");
            None
        }
    }
}
