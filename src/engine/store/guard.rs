//! Opening a store never makes damage worse.
//!
//! sled repairs its log when it opens: after a crash it drops a torn tail
//! (expected: nothing in it was acknowledged), but given a store damaged in
//! the middle (a flipped bit, overwritten bytes, a cut file) it zeroes
//! everything after the damage, and intact data with it.
//!
//! So a clean close leaves a fingerprint of the store's files (length,
//! modification time, CRC). An open that finds the fingerprint intact opens
//! directly. Any other open — after a crash, or a store changed while
//! stopped — first copies the files aside, then lets sled open. A store
//! changed while it was cleanly stopped must open, and what sled kept must
//! hold together (every run decodes and has all its history, every index
//! entry names a run; sled may rewrite parts of an intact log as it opens,
//! so bytes alone do not tell); if not, the original bytes are put back,
//! the copy is kept (named in the error), and the store is refused. After a
//! crash sled's repair of the torn tail is accepted, and the copy removed.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::error::StoreError;

const MARKER: &str = "holdfast-clean";

/// Where the copy goes: beside the data directory (so the directory itself
/// stays byte for byte as it was), or inside it if its parent is not ours
/// to write.
fn copy_dir(data_dir: &Path, what: &str) -> PathBuf {
    let name = data_dir.file_name().map_or_else(
        || "holdfast-data".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let beside = data_dir.with_file_name(format!("{name}.{what}"));
    let parent_writable = data_dir
        .parent()
        .and_then(|p| {
            std::fs::metadata(if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            })
            .ok()
        })
        .is_some_and(|m| !m.permissions().readonly());
    if parent_writable {
        beside
    } else {
        data_dir.join(format!("holdfast-{what}"))
    }
}

/// sled's files in a data directory: `conf`, `db`, and `snap.*`.
fn store_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_file() && (name == "conf" || name == "db" || name.starts_with("snap."))
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// One line per file: name, length, modification time, CRC32.
fn fingerprint(dir: &Path) -> std::io::Result<String> {
    let mut out = String::new();
    for name in store_files(dir)? {
        let path = dir.join(&name);
        let meta = std::fs::metadata(&path)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut hasher = crc32fast::Hasher::new();
        let mut f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        out.push_str(&format!(
            "{name} {} {mtime} {:08x}\n",
            meta.len(),
            hasher.finalize()
        ));
    }
    Ok(out)
}

/// After a clean close: remembers the files as they are now.
pub(crate) fn mark_clean(dir: &Path) -> std::io::Result<()> {
    let tmp = dir.join(format!("{MARKER}.tmp"));
    std::fs::write(&tmp, fingerprint(dir)?)?;
    std::fs::rename(&tmp, dir.join(MARKER))
}

/// How the store was left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LastStop {
    /// Closed cleanly and unchanged since.
    Clean,
    /// Closed cleanly, then changed while stopped: damage.
    ChangedWhileStopped,
    /// Not closed cleanly: a crash (or a holdfast that predates markers).
    Unclean,
}

/// Reads the clean-close marker.
pub(crate) fn take_last_stop(dir: &Path) -> std::io::Result<LastStop> {
    let marker = dir.join(MARKER);
    let Ok(saved) = std::fs::read_to_string(&marker) else {
        return Ok(LastStop::Unclean);
    };
    let now = fingerprint(dir)?;
    Ok(if saved == now {
        LastStop::Clean
    } else {
        LastStop::ChangedWhileStopped
    })
}

/// The store's files as they were before sled touched them.
pub(crate) struct Backup {
    dir: PathBuf,
    files: Vec<String>,
}

impl Backup {
    pub(crate) fn take(data_dir: &Path) -> std::io::Result<Backup> {
        let dir = copy_dir(data_dir, "recovery");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir(&dir)?;
        let files = store_files(data_dir)?;
        for name in &files {
            std::fs::copy(data_dir.join(name), dir.join(name))?;
        }
        Ok(Backup { dir, files })
    }

    /// Whether the store's files now differ from the copy; the first
    /// differing file and byte, in words.
    pub(crate) fn changed(&self, data_dir: &Path) -> std::io::Result<Option<String>> {
        // The log and its configuration; sled may replace a snapshot file
        // as it opens, which changes nothing it holds.
        for name in self.files.iter().filter(|n| !n.starts_with("snap.")) {
            let before = std::fs::read(self.dir.join(name))?;
            let after = std::fs::read(data_dir.join(name)).unwrap_or_default();
            if before != after {
                let at = before
                    .iter()
                    .zip(&after)
                    .position(|(a, b)| a != b)
                    .unwrap_or(before.len().min(after.len()));
                return Ok(Some(format!(
                    "opening it would rewrite {name} from byte {at} of {}",
                    before.len()
                )));
            }
        }
        Ok(None)
    }

    /// Puts the original files back, and removes any sled wrote since.
    fn put_back(&self, data_dir: &Path) -> std::io::Result<()> {
        for name in &self.files {
            std::fs::copy(self.dir.join(name), data_dir.join(name))?;
        }
        for name in store_files(data_dir)? {
            if !self.files.contains(&name) {
                std::fs::remove_file(data_dir.join(name))?;
            }
        }
        Ok(())
    }

    /// Puts the original files back; the copy goes.
    pub(crate) fn restore(self, data_dir: &Path) -> std::io::Result<()> {
        self.put_back(data_dir)?;
        self.discard();
        Ok(())
    }

    /// Puts the original bytes back and keeps the copy under a name that
    /// says what it is; returns where.
    pub(crate) fn restore_and_keep(self, data_dir: &Path) -> std::io::Result<PathBuf> {
        self.put_back(data_dir)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A name no earlier copy has (two failed opens in one second).
        let mut kept = copy_dir(data_dir, &format!("damaged-{stamp}"));
        let mut n = 1;
        while kept.exists() {
            n += 1;
            kept = copy_dir(data_dir, &format!("damaged-{stamp}-{n}"));
        }
        std::fs::rename(&self.dir, &kept)?;
        Ok(kept)
    }

    pub(crate) fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// sled's open, which repairs the log, under [`guard`]'s protection.
pub(super) fn open_guarded(path: &Path) -> Result<sled::Db, StoreError> {
    let display = path.display().to_string();
    let io = |e: std::io::Error| StoreError::Io {
        path: display.clone(),
        detail: e.to_string(),
    };
    let existing = path.join("db").is_file();
    if existing && !writable(path) {
        return Err(StoreError::ReadOnly { path: display });
    }
    let last = if existing {
        take_last_stop(path).map_err(io)?
    } else {
        LastStop::Clean
    };
    // From the moment sled opens the store is in use: a crash leaves no marker.
    let in_use = || match std::fs::remove_file(path.join(MARKER)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
        _ => Ok(()),
    };
    if last == LastStop::Clean {
        in_use()?;
        return open_sled(path);
    }
    let backup = Backup::take(path).map_err(io)?;
    let damaged = |backup: Backup, what: String| -> StoreError {
        let kept = backup.restore_and_keep(path);
        StoreError::Damaged {
            path: display.clone(),
            detail: what,
            kept: match kept {
                Ok(p) => p.display().to_string(),
                Err(e) => format!("(the copy could not be kept: {e})"),
            },
        }
    };
    match open_sled(path) {
        Err(e @ StoreError::Locked { .. }) => {
            backup.discard();
            Err(e)
        }
        Err(e) => {
            let detail = match &e {
                StoreError::Corrupt { detail, .. } => plain(detail),
                other => other.to_string(),
            };
            // Is the snapshot the only damage? Try the log alone.
            let snaps: Vec<String> = store_files(path)
                .map_err(io)?
                .into_iter()
                .filter(|n| n.starts_with("snap."))
                .collect();
            if !snaps.is_empty() {
                let aside = path.join("holdfast-snapshot-check");
                let _ = std::fs::create_dir(&aside);
                for n in &snaps {
                    let _ = std::fs::rename(path.join(n), aside.join(n));
                }
                // The log alone opens, and sled rewrote none of it: only
                // the snapshot was damaged.
                let log_alone = open_sled(path).map(drop).is_ok()
                    && wait_for_unlock(path)
                    && backup.changed(path).map_err(io)?.is_none();
                let _ = std::fs::remove_dir_all(&aside);
                if log_alone && last == LastStop::Unclean {
                    // A crash mid-snapshot left it unreadable; the log is
                    // whole: sled rebuilt the snapshot from it.
                    backup.discard();
                    in_use()?;
                    return open_sled(path);
                }
                if log_alone {
                    // Nothing of value is damaged: put it back as it was,
                    // keep no copy, and say what to remove.
                    backup.restore(path).map_err(io)?;
                    let files: Vec<String> = snaps
                        .iter()
                        .map(|n| path.join(n).display().to_string())
                        .collect();
                    return Err(StoreError::DamagedSnapshot {
                        path: display.clone(),
                        files: files.join(", "),
                    });
                }
            }
            Err(damaged(backup, detail))
        }
        Ok(db) if last == LastStop::ChangedWhileStopped => {
            // Cleanly stopped, then changed. sled may rewrite parts of its
            // log as it opens an intact store, so bytes alone do not tell;
            // what it kept must hold together: every run decodes, its
            // history is all there, every index entry names a run.
            match check_whole(&db) {
                Ok(()) => {
                    backup.discard();
                    in_use()?;
                    Ok(db)
                }
                Err(what) => {
                    drop(db);
                    if !wait_for_unlock(path) {
                        return Err(io(std::io::Error::other(
                            "the store is still held open; try again",
                        )));
                    }
                    let changed = backup.changed(path).map_err(io)?.unwrap_or_default();
                    Err(damaged(
                        backup,
                        format!(
                            "its files changed while holdfast was stopped and {what}{}",
                            if changed.is_empty() {
                                String::new()
                            } else {
                                format!(" ({changed})")
                            }
                        ),
                    ))
                }
            }
        }
        Ok(db) => {
            // After a crash: sled drops the torn tail nobody was told about.
            backup.discard();
            in_use()?;
            Ok(db)
        }
    }
}

fn open_sled(path: &Path) -> Result<sled::Db, StoreError> {
    let display = path.display().to_string();
    let cfg = sled::Config::new().path(path);
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || cfg.open()));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(StoreError::from_sled_open(&display, e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked while opening".into());
            Err(StoreError::Corrupt {
                path: display,
                detail: msg,
            })
        }
    }
}

/// Waits (up to 2 s) until no process holds sled's lock on `db`; true once free.
fn wait_for_unlock(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        for _ in 0..400 {
            let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path.join("db"))
            else {
                return false;
            };
            // SAFETY: a valid open descriptor; the lock is released when `f` closes.
            let got = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            if got {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// sled's account of damage, in plain words.
fn plain(detail: &str) -> String {
    if detail.contains("corrupt") || detail.contains("Corruption") {
        "its log does not read back whole (a checksum does not match)".into()
    } else {
        detail
            .split(" backtrace")
            .next()
            .unwrap_or(detail)
            .trim()
            .to_string()
    }
}

/// Whether holdfast may write in the data directory (a read-only mount, an
/// archive, a directory of someone else's cannot be opened in place).
fn writable(dir: &Path) -> bool {
    let probe = dir.join(".holdfast-write-probe");
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok && std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("db"))
        .is_ok()
}

/// A private copy of a store that cannot be written in place, for reading
/// it: in the temporary directory, removed when the store closes.
pub(crate) fn scratch_copy(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "holdfast-read-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir)?;
    for name in store_files(data_dir)? {
        std::fs::copy(data_dir.join(&name), dir.join(&name))?;
    }
    Ok(dir)
}

/// Whether the engine's data in `db` holds together; what is wrong if not.
fn check_whole(db: &sled::Db) -> Result<(), String> {
    use super::{RunIndex, decode, event_key, run_key};
    let tree = db.open_tree("engine").map_err(|e| e.to_string())?;
    let mut runs = std::collections::HashSet::new();
    for item in tree.range(run_key(0)..=run_key(u64::MAX)) {
        let (k, v) = item.map_err(|e| e.to_string())?;
        let seq = u64::from_be_bytes(k[2..10].try_into().unwrap_or([0; 8]));
        let run: crate::engine::state::RunState =
            decode(&v, &|| format!("run {seq}")).map_err(|e| e.to_string())?;
        let events = tree
            .range(event_key(seq, 1)..=event_key(seq, u64::MAX))
            .count() as u64;
        if events != run.history_length() {
            return Err(format!(
                "run {} has {events} of its {} history events",
                run.workflow_id,
                run.history_length()
            ));
        }
        runs.insert(seq);
    }
    for index in [
        RunIndex::Status(crate::engine::state::WorkflowExecutionStatus::Running),
        RunIndex::Retrying,
    ] {
        for seq in index_seqs(&tree, &index)? {
            if !runs.contains(&seq) {
                return Err(format!("an index names run {seq}, which is gone"));
            }
        }
    }
    Ok(())
}

fn index_seqs(tree: &sled::Tree, index: &super::RunIndex) -> Result<Vec<u64>, String> {
    let prefix = index.prefix();
    let n = prefix.len();
    tree.scan_prefix(&prefix)
        .map(|item| {
            let (k, _) = item.map_err(|e| e.to_string())?;
            k.get(n..n + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| "an index key is damaged".to_string())
        })
        .collect()
}
