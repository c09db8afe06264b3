//! Build script shared by the workspace's packages that link DuckDB (tag-server,
//! tag-bench, tag-tests): when DuckDB is linked as a prebuilt library from
//! `DUCKDB_LIB_DIR` (what `.ci/duckdb` fetches, and what ./serve and .ci/run use),
//! record that folder, and the binary's own folder, in the run-time search path of
//! the package's binaries and tests, so they find `libduckdb.so` without
//! `LD_LIBRARY_PATH`. A self-contained build (`--features tag-server/bundled`) links
//! DuckDB statically and needs nothing.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    println!("cargo:rerun-if-changed=../build/rpath.rs");
    let prebuilt = std::env::var_os("DUCKDB_LIB_DIR").is_some();
    let bundled = std::env::var_os("CARGO_FEATURE_BUNDLED").is_some();
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("tag-server") && !prebuilt && !bundled {
        // Said here, instead of the linker's "cannot find -lduckdb" much later.
        eprintln!(
            "DuckDB: set DUCKDB_LIB_DIR to the folder of DuckDB 1.4.4's prebuilt libduckdb \
             (`export DUCKDB_LIB_DIR=$(.ci/duckdb)` fetches and verifies it; ./serve and .ci/run do this), \
             or build DuckDB from source with `--features tag-server/bundled`"
        );
        std::process::exit(1);
    }
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "windows" {
        return;
    }
    // `$ORIGIN` (`@loader_path` on macOS): a copy of libduckdb beside the binary works.
    let origin = if target_os == "macos" { "@loader_path" } else { "$ORIGIN" };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{origin}");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
