//! Files the apps write inside the data directory: names from input are
//! checked so they cannot escape it, and every file appears whole or not at
//! all (written to a temporary file, synced, renamed, directory synced).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Accepts a plain file name (no directories, no `..`, nothing hidden) and
/// gives it `extension` if it has none.
pub fn safe_file_name(name: &str, extension: &str) -> Result<String, String> {
    let trimmed = name.trim();
    let bad = trimmed.is_empty()
        || trimmed.starts_with('.')
        || trimmed.len() > 200
        || trimmed
            .chars()
            .any(|c| matches!(c, '/' | '\\' | ':' | '\0') || c.is_control());
    if bad {
        return Err(format!(
            "{name:?} is not a plain file name (no folders, no leading dot, at most 200 characters)"
        ));
    }
    let suffix = format!(".{extension}");
    if trimmed.to_ascii_lowercase().ends_with(&suffix) {
        Ok(trimmed.to_string())
    } else {
        Ok(format!("{trimmed}{suffix}"))
    }
}

/// A file name made from an id that may hold anything (a workflow id).
pub fn file_name_for(id: &str, extension: &str) -> String {
    let stem: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let stem = if stem.is_empty() {
        "report".into()
    } else {
        stem
    };
    format!("{stem}.{extension}")
}

/// Writes `bytes` to `dir/name` atomically; creates `dir` if needed.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| target)
}
