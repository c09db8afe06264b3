//! The demo datasets (`movies`, `support`) built into the binary, so `tag-server`
//! runs the same from any folder, installed or in a container. On start they are
//! written to `<data_dir>/bundled` (only files whose content changed), and loaded
//! from there like any other datasets folder.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use crate::error::{Error, Result};

static DATASETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../datasets");

/// Writes the bundled datasets under `data_dir` and returns their folder.
pub fn materialize(data_dir: &Path) -> Result<PathBuf> {
    let root = data_dir.join("bundled");
    write_dir(&DATASETS, &root)?;
    Ok(root)
}

fn write_dir(dir: &Dir<'static>, root: &Path) -> Result<()> {
    let failed = |path: &Path, e: std::io::Error| Error::dataset_from(format!("cannot write bundled dataset file {}: {e}", path.display()), e);
    for file in dir.files() {
        let path = root.join(file.path());
        if std::fs::read(&path).is_ok_and(|existing| existing == file.contents()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed(parent, e))?;
        }
        std::fs::write(&path, file.contents()).map_err(|e| failed(&path, e))?;
    }
    for sub in dir.dirs() {
        write_dir(sub, root)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_datasets_are_written_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = super::materialize(dir.path()).unwrap();
        let movies = root.join("movies/movies.csv");
        assert!(movies.is_file());
        assert!(root.join("support/tickets.csv").is_file());
        let modified = std::fs::metadata(&movies).unwrap().modified().unwrap();
        super::materialize(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&movies).unwrap().modified().unwrap(), modified, "unchanged files are not rewritten");
    }
}
