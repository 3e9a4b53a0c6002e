//! The store: sled, one tree, big-endian prefixed keys.
//!
//! Layout of the `engine` tree:
//! - `m/format_version`            → u32 (big-endian)
//! - `r/<run seq: u64 BE>`         → envelope(RunState)
//! - `h/<run seq><event id: u64 BE>` → envelope(HistoryEvent)
//! - `w/<workflow id>`             → run seq of the id's newest run
//!
//! A transition's writes go in one [`sled::Batch`], applied atomically. A
//! commit returns a ticket; [`Store::durable`] waits until a flush covers that
//! ticket. Flushes are shared: whoever waits first flushes for everybody
//! written so far (group commit).
//!
//! Every stored value is an envelope: 1 byte schema version, a CRC32 of the
//! body, then the bincode body, so a damaged value is reported, not decoded
//! into nonsense.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::StoreError;
use super::history::HistoryEvent;
use super::state::RunState;

/// Bumped when the stored layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
const ENVELOPE_VERSION: u8 = 1;
const FORMAT_KEY: &[u8] = b"m/format_version";
/// No stored value is larger than this (bincode refuses to allocate beyond it).
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value as a stored envelope.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let body = bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| StoreError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a stored envelope; `what` names the value in the error.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &dyn Fn() -> String,
) -> Result<T, StoreError> {
    let corrupt = |detail: String| StoreError::CorruptValue {
        what: what(),
        detail,
    };
    if bytes.len() < 5 {
        return Err(corrupt(format!("{} bytes is too short", bytes.len())));
    }
    if bytes[0] != ENVELOPE_VERSION {
        return Err(corrupt(format!("unknown envelope version {}", bytes[0])));
    }
    let crc = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let body = &bytes[5..];
    if crc32fast::hash(body) != crc {
        return Err(corrupt("checksum mismatch".to_string()));
    }
    let (v, _) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(v)
}

pub(crate) fn run_key(seq: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(b"r/");
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn event_key(seq: u64, event_id: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..2].copy_from_slice(b"h/");
    k[2..10].copy_from_slice(&seq.to_be_bytes());
    k[10..].copy_from_slice(&event_id.to_be_bytes());
    k
}

fn history_prefix(seq: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(b"h/");
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn workflow_key(workflow_id: &str) -> Vec<u8> {
    let mut k = b"w/".to_vec();
    k.extend_from_slice(workflow_id.as_bytes());
    k
}

/// The writes of one transition. Committed batches are gathered and applied
/// to sled as one atomic batch per flush (group commit), so a transition is
/// never half-applied and one fsync serves every transition in the group.
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<(Vec<u8>, Vec<u8>)>,
}

impl WriteBatch {
    pub fn put_event(&mut self, seq: u64, event: &HistoryEvent) -> Result<(), StoreError> {
        let v = encode(event)?;
        self.ops.push((event_key(seq, event.event_id).to_vec(), v));
        Ok(())
    }

    pub fn put_run(&mut self, seq: u64, run: &RunState) -> Result<(), StoreError> {
        let v = encode(run)?;
        self.ops.push((run_key(seq).to_vec(), v));
        Ok(())
    }

    pub fn put_workflow_index(&mut self, workflow_id: &str, seq: u64) {
        self.ops
            .push((workflow_key(workflow_id), seq.to_be_bytes().to_vec()));
    }

    /// Raw insert (used by the storage-floor benchmark).
    pub fn put_raw(&mut self, key: &[u8], value: Vec<u8>) {
        self.ops.push((key.to_vec(), value));
    }
}

struct FlushState {
    flushed: u64,
    failed: Option<String>,
}

/// Committed, not yet applied to sled: `(ops, newest ticket)`.
#[derive(Default)]
struct Pending {
    ops: Vec<(Vec<u8>, Vec<u8>)>,
    ticket: u64,
}

/// The sled database behind the engine.
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    written: AtomicU64,
    /// Mirrors `FlushState::flushed` so an already-durable ticket needs no lock.
    durable_up_to: AtomicU64,
    pending: std::sync::Mutex<Pending>,
    flush: tokio::sync::Mutex<FlushState>,
    flushes: AtomicU64,
}

impl Store {
    /// Opens (or creates) a data directory. Refuses a directory that holds
    /// something other than a holdfast store, a store of another format, a
    /// locked store, and a damaged one, each with an error that names it.
    pub fn open(path: &Path) -> Result<Arc<Store>, StoreError> {
        let display = path.display().to_string();
        if path.exists() {
            if !path.is_dir() {
                return Err(StoreError::NotADataDir {
                    path: display,
                    detail: "it is a file, not a directory".into(),
                });
            }
            let has_entries = std::fs::read_dir(path)
                .map_err(|e| StoreError::Io {
                    path: display.clone(),
                    detail: e.to_string(),
                })?
                .next()
                .is_some();
            if has_entries && !(path.join("conf").is_file() && path.join("db").is_file()) {
                return Err(StoreError::NotADataDir {
                    path: display,
                    detail: "it is not empty and holds no holdfast store (no conf and db files)"
                        .into(),
                });
            }
        }
        let cfg = sled::Config::new().path(path);
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || cfg.open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(StoreError::from_sled_open(&display, e)),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled panicked while opening".into());
                return Err(StoreError::Corrupt {
                    path: display,
                    detail: msg,
                });
            }
        };
        let tree = db
            .open_tree("engine")
            .map_err(|e| StoreError::from_sled(&display, e))?;
        match tree
            .get(FORMAT_KEY)
            .map_err(|e| StoreError::from_sled(&display, e))?
        {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        path: display.clone(),
                        detail: "the format version key is damaged".into(),
                    })?;
                if found != FORMAT_VERSION {
                    return Err(StoreError::FormatVersion {
                        path: display,
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
            }
            None => {
                if !tree.is_empty() {
                    return Err(StoreError::Corrupt {
                        path: display,
                        detail: "it holds data but no format version".into(),
                    });
                }
                tree.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes()[..])
                    .map_err(|e| StoreError::from_sled(&display, e))?;
                db.flush().map_err(|e| StoreError::from_sled(&display, e))?;
            }
        }
        Ok(Arc::new(Store {
            db,
            tree,
            path: path.to_path_buf(),
            written: AtomicU64::new(0),
            durable_up_to: AtomicU64::new(0),
            pending: std::sync::Mutex::new(Pending::default()),
            flush: tokio::sync::Mutex::new(FlushState {
                flushed: 0,
                failed: None,
            }),
            flushes: AtomicU64::new(0),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A tree of its own in the same database for an application's data (a
    /// bank's accounts, say), so it lives and is flushed beside the engine's.
    /// The engine's own tree and sled's internal names are refused.
    pub fn app_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        if name.is_empty() || name == "engine" || name.starts_with("__") {
            return Err(StoreError::Io {
                path: self.path.display().to_string(),
                detail: format!("{name:?} is not a name an application's tree may have"),
            });
        }
        self.db.open_tree(name).map_err(|e| self.err(e))
    }

    fn err(&self, e: sled::Error) -> StoreError {
        StoreError::from_sled(&self.path.display().to_string(), e)
    }

    /// A new, never reused run sequence number.
    pub fn next_run_seq(&self) -> Result<u64, StoreError> {
        // generate_id starts at 0; keep 0 free.
        self.db
            .generate_id()
            .map(|id| id + 1)
            .map_err(|e| self.err(e))
    }

    /// Queues a transition's writes for the next group; returns the ticket
    /// to wait on with [`Store::durable`]. Nothing is visible in sled, or
    /// acknowledged, until that ticket is durable. Callers order commits of
    /// one run themselves (the engine's lock).
    pub fn commit(&self, batch: WriteBatch) -> Result<u64, StoreError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.ops.extend(batch.ops);
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        p.ticket = ticket;
        Ok(ticket)
    }

    /// Takes every queued write as one sled batch, with the newest ticket it covers.
    fn take_pending(&self) -> (sled::Batch, u64, bool) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ops = std::mem::take(&mut p.ops);
        let any = !ops.is_empty();
        let mut b = sled::Batch::default();
        for (k, v) in ops {
            b.insert(k, v);
        }
        (b, p.ticket, any)
    }

    /// The newest ticket handed out.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// How many fsyncs the store has done (group commit makes this far smaller than commits).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Waits until everything up to `ticket` is flushed to disk.
    pub async fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        if self.durable_up_to.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let mut st = self.flush.lock().await;
        if let Some(e) = &st.failed {
            return Err(StoreError::Io {
                path: self.path.display().to_string(),
                detail: e.clone(),
            });
        }
        if st.flushed >= ticket {
            return Ok(());
        }
        let (batch, target, any) = self.take_pending();
        let db = self.db.clone();
        let tree = self.tree.clone();
        let res = tokio::task::spawn_blocking(move || {
            if any {
                tree.apply_batch(batch)?;
            }
            db.flush()
        })
        .await;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        match res {
            Ok(Ok(_)) => {
                st.flushed = target;
                self.durable_up_to.store(target, Ordering::SeqCst);
                Ok(())
            }
            Ok(Err(e)) => {
                let e = self.err(e);
                st.failed = Some(e.to_string());
                Err(e)
            }
            Err(join) => {
                st.failed = Some(join.to_string());
                Err(StoreError::Io {
                    path: self.path.display().to_string(),
                    detail: join.to_string(),
                })
            }
        }
    }

    /// Applies and flushes everything committed so far (blocking).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let (batch, _, any) = self.take_pending();
        if any {
            self.tree.apply_batch(batch).map_err(|e| self.err(e))?;
        }
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    pub fn run(&self, seq: u64) -> Result<Option<RunState>, StoreError> {
        match self.tree.get(run_key(seq)).map_err(|e| self.err(e))? {
            Some(v) => decode(&v, &|| format!("run {seq}")).map(Some),
            None => Ok(None),
        }
    }

    pub fn run_seq_of(&self, workflow_id: &str) -> Result<Option<u64>, StoreError> {
        match self
            .tree
            .get(workflow_key(workflow_id))
            .map_err(|e| self.err(e))?
        {
            Some(v) => {
                let b = <[u8; 8]>::try_from(v.as_ref()).map_err(|_| StoreError::CorruptValue {
                    what: format!("index of workflow {workflow_id:?}"),
                    detail: "not 8 bytes".into(),
                })?;
                Ok(Some(u64::from_be_bytes(b)))
            }
            None => Ok(None),
        }
    }

    /// All runs, newest first, starting below `before` (exclusive) when given.
    pub fn runs_newest_first(
        &self,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<(u64, RunState), StoreError>> + '_ {
        let start = run_key(0);
        let end = before.map(run_key).unwrap_or_else(|| {
            let mut k = [0u8; 10];
            k[..2].copy_from_slice(b"r0"); // '0' follows '/'
            k
        });
        self.tree.range(start..end).rev().map(move |item| {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let seq = u64::from_be_bytes(k[2..10].try_into().unwrap_or([0; 8]));
            let run: RunState = decode(&v, &|| format!("run {seq}"))?;
            Ok((seq, run))
        })
    }

    /// The whole history of a run, checked to be numbered 1..n without gaps.
    pub fn history(&self, seq: u64) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history_from(seq, 1)
    }

    /// History events of a run with ids ≥ `from`.
    pub fn history_from(&self, seq: u64, from: u64) -> Result<Vec<HistoryEvent>, StoreError> {
        let mut out = Vec::new();
        let first = from.max(1);
        let start = event_key(seq, first);
        let end = event_key(seq, u64::MAX);
        let prefix = history_prefix(seq);
        for (expect, item) in (first..).zip(self.tree.range(start..end)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            debug_assert!(k.starts_with(&prefix));
            let ev: HistoryEvent = decode(&v, &|| format!("event of run {seq}"))?;
            if ev.event_id != expect {
                return Err(StoreError::CorruptValue {
                    what: format!("history of run {seq}"),
                    detail: format!("expected event {expect}, found {}", ev.event_id),
                });
            }
            out.push(ev);
        }
        Ok(out)
    }
}

impl Drop for Store {
    /// A clean shutdown keeps what was committed but not yet waited for
    /// (activity starts); a crash loses only what nobody was told about.
    fn drop(&mut self) {
        let _ = self.flush_blocking();
    }
}
