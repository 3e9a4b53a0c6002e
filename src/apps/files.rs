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

/// A file name for one run of a workflow: the workflow id, any character
/// but letters, digits and `-` written as `_XX` (so two ids never share a
/// name: `r/1` is `r_2F1`, `r_1` is `r_5F1`), then the run's tag (so two
/// runs of one id never share a file either): `lights-1.pdf`.
pub fn file_name_for_run(workflow_id: &str, run_id: &str, extension: &str) -> String {
    let mut stem = String::new();
    for c in workflow_id.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            stem.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                stem.push_str(&format!("_{b:02X}"));
            }
        }
    }
    if stem.len() > 150 {
        // Still one name per id: the cut part is kept as its hash.
        let hash = workflow_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let cut = (0..=120)
            .rev()
            .find(|&i| stem.is_char_boundary(i))
            .unwrap_or(0);
        stem = format!("{}_{hash:016x}", &stem[..cut]);
    }
    if stem.is_empty() {
        stem = "report".into();
    }
    let tag: String = run_id
        .rsplit('-')
        .next()
        .unwrap_or(run_id)
        .trim_start_matches('0')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    let tag = if tag.is_empty() { "0".to_string() } else { tag };
    format!("{stem}-{tag}.{extension}")
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
