//! The store: sled, one tree, big-endian prefixed keys.
//!
//! Layout of the `engine` tree:
//! - `m/format_version`            → u32 (big-endian)
//! - `m/clock`                     → u64 (big-endian): the engine time of the
//!   newest commit, so time never goes backwards across a restart
//! - `r/<run seq: u64 BE>`         → envelope(RunState)
//! - `h/<run seq><event id: u64 BE>` → envelope(HistoryEvent)
//! - `w/<workflow id>`             → run seq of the id's newest run
//! - `s/<status: u8><run seq>`     → (empty) index of runs by status; the
//!   `Running` prefix is what recovery reads, so opening costs what is running
//! - `t/<workflow type>\0<run seq>` → (empty) index of runs by type
//! - `y/<run seq>`                 → (empty) runs with an activity retrying
//! - `i/<run seq>`                 → `<workflow id>\0<workflow type>`, lowercased,
//!   so a text search reads a few bytes per run instead of its state
//!
//! Indexes are written in the same batch as the run they describe.
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

use tokio::sync::broadcast;

mod guard;

use super::error::StoreError;
use super::feed::Change;
use super::history::HistoryEvent;
use super::state::{RunState, WorkflowExecutionStatus};

/// Bumped when the stored layout changes incompatibly (2: indexes, attempt
/// records, the first run of a chain in the run's state).
pub(crate) const FORMAT_VERSION: u32 = 3;
const ENVELOPE_VERSION: u8 = 1;
const FORMAT_KEY: &[u8] = b"m/format_version";
const CLOCK_KEY: &[u8] = b"m/clock";
/// No stored value is larger than this (bincode refuses to allocate beyond it).
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value as a stored envelope.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let body = bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| StoreError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a stored envelope; `what` names the value in the error.
pub(crate) fn decode<T: DeserializeOwned>(
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

fn text_key(seq: u64) -> Vec<u8> {
    let mut k = b"i/".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn status_byte(status: WorkflowExecutionStatus) -> u8 {
    match status {
        WorkflowExecutionStatus::Running => 1,
        WorkflowExecutionStatus::Completed => 2,
        WorkflowExecutionStatus::Failed => 3,
        WorkflowExecutionStatus::Canceled => 4,
        WorkflowExecutionStatus::Terminated => 5,
        WorkflowExecutionStatus::ContinuedAsNew => 6,
        WorkflowExecutionStatus::TimedOut => 7,
    }
}

/// A secondary index of runs: every key is the index's prefix followed by
/// the run's sequence number, so a scan comes out newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RunIndex {
    /// Every run (the runs themselves).
    All,
    Status(WorkflowExecutionStatus),
    Type(String),
    Retrying,
}

impl RunIndex {
    fn prefix(&self) -> Vec<u8> {
        match self {
            RunIndex::All => b"r/".to_vec(),
            RunIndex::Status(s) => vec![b's', b'/', status_byte(*s)],
            RunIndex::Type(t) => {
                let mut k = b"t/".to_vec();
                k.extend_from_slice(t.as_bytes());
                k.push(0);
                k
            }
            RunIndex::Retrying => b"y/".to_vec(),
        }
    }

    fn key(&self, seq: u64) -> Vec<u8> {
        let mut k = self.prefix();
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }
}
/// The writes of one transition. Committed batches are gathered and applied
/// to sled as one atomic batch per flush (group commit), so a transition is
/// never half-applied and one fsync serves every transition in the group.
#[derive(Default)]
pub(crate) struct WriteBatch {
    /// `None` removes the key.
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// Records the engine time of this commit.
    pub(crate) fn put_clock(&mut self, now_ms: u64) {
        self.ops
            .push((CLOCK_KEY.to_vec(), Some(now_ms.to_be_bytes().to_vec())));
    }

    pub(crate) fn put_event(&mut self, seq: u64, event: &HistoryEvent) -> Result<(), StoreError> {
        let v = encode(event)?;
        self.ops
            .push((event_key(seq, event.event_id).to_vec(), Some(v)));
        Ok(())
    }

    /// A run's state and the indexes that change with it (`before` is the
    /// state the run had, `None` for a new run).
    pub(crate) fn put_run(
        &mut self,
        before: Option<&RunState>,
        run: &RunState,
    ) -> Result<(), StoreError> {
        let seq = run.seq;
        self.ops.push((run_key(seq).to_vec(), Some(encode(run)?)));
        match before {
            None => {
                self.ops.push((
                    workflow_key(&run.workflow_id),
                    Some(seq.to_be_bytes().to_vec()),
                ));
                let text = format!("{}\0{}", run.workflow_id, run.workflow_type).to_lowercase();
                self.ops.push((text_key(seq), Some(text.into_bytes())));
                let by_type = RunIndex::Type(run.workflow_type.clone());
                self.ops.push((by_type.key(seq), Some(Vec::new())));
                self.ops
                    .push((RunIndex::Status(run.status).key(seq), Some(Vec::new())));
            }
            Some(b) if b.status != run.status => {
                self.ops.push((RunIndex::Status(b.status).key(seq), None));
                self.ops
                    .push((RunIndex::Status(run.status).key(seq), Some(Vec::new())));
            }
            Some(_) => {}
        }
        let was = before.is_some_and(RunState::has_activity_retrying);
        let is = run.has_activity_retrying();
        if was != is {
            let v = is.then(Vec::new);
            self.ops.push((RunIndex::Retrying.key(seq), v));
        }
        Ok(())
    }
}

pub(crate) struct FlushState {
    flushed: u64,
    failed: Option<String>,
}

/// Committed, not yet applied to sled: the writes, the newest ticket, and
/// the changes to announce once they are durable.
#[derive(Default)]
struct Pending {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ticket: u64,
    changes: Vec<Change>,
}

/// The sled database behind the engine.
pub(crate) struct Store {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    written: AtomicU64,
    /// Commits that wrote something (a transient change writes nothing).
    writes: AtomicU64,
    /// Mirrors `FlushState::flushed` so an already-durable ticket needs no lock.
    durable_up_to: Arc<AtomicU64>,
    pending: std::sync::Mutex<Pending>,
    flush: Arc<tokio::sync::Mutex<FlushState>>,
    flushes: AtomicU64,
    /// Tickets a simulated crash took back before they were durable.
    lost: std::sync::Mutex<Vec<(u64, u64)>>,
    any_lost: std::sync::atomic::AtomicBool,
    /// A private copy, removed on close.
    scratch: std::sync::atomic::AtomicBool,
    /// The next run sequence number (one past the newest stored run).
    next_seq: AtomicU64,
    /// The change feed: each commit's [`Change`], sent in commit order once durable.
    feed: broadcast::Sender<Change>,
}

impl Store {
    /// Opens (or creates) a data directory. Refuses a directory that holds
    /// something other than a holdfast store, a store of another format, a
    /// locked store, and a damaged one, each with an error that names it.
    pub(crate) fn open(path: &Path) -> Result<Arc<Store>, StoreError> {
        let display = path.display().to_string();
        if path.exists() {
            if !path.is_dir() {
                return Err(StoreError::NotADataDir {
                    path: display,
                    detail: "it is a file, not a directory".into(),
                });
            }
            // What holdfast itself keeps beside the store (its log, who holds
            // the directory, the guided scenarios, the reports) is no
            // foreign data.
            const OURS: [&str; 6] = [
                "holdfast.log",
                "holdfast.pid",
                "scenarios",
                "scenarios-done",
                "reports",
                "outbox",
            ];
            let has_entries = std::fs::read_dir(path)
                .map_err(|e| StoreError::Io {
                    path: display.clone(),
                    detail: e.to_string(),
                })?
                .filter_map(|e| e.ok())
                .any(|e| !OURS.contains(&e.file_name().to_string_lossy().as_ref()));
            if has_entries && !(path.join("conf").is_file() && path.join("db").is_file()) {
                return Err(StoreError::NotADataDir {
                    path: display,
                    detail: "it is not empty and holds no holdfast store (no conf and db files)"
                        .into(),
                });
            }
        }
        let db = guard::open_guarded(path)?;
        // Who holds the directory, for the next process that finds it locked.
        let _ = std::fs::write(
            path.join(super::error::PID_FILE),
            std::process::id().to_string(),
        );
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
        let last_seq = match tree
            .range(run_key(0)..run_key(u64::MAX))
            .next_back()
            .transpose()
            .map_err(|e| StoreError::from_sled(&display, e))?
        {
            Some((k, _)) => u64::from_be_bytes(k[2..10].try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let (feed, _) = broadcast::channel(4096);
        Ok(Arc::new(Store {
            next_seq: AtomicU64::new(last_seq + 1),
            lost: std::sync::Mutex::new(Vec::new()),
            any_lost: std::sync::atomic::AtomicBool::new(false),
            scratch: std::sync::atomic::AtomicBool::new(false),
            feed,
            db,
            tree,
            path: path.to_path_buf(),
            written: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            durable_up_to: Arc::new(AtomicU64::new(0)),
            pending: std::sync::Mutex::new(Pending::default()),
            flush: Arc::new(tokio::sync::Mutex::new(FlushState {
                flushed: 0,
                failed: None,
            })),
            flushes: AtomicU64::new(0),
        }))
    }

    /// Opens a private copy of a store that cannot be written in place
    /// (see [`guard::scratch_copy`]); the copy goes when the store closes.
    pub(crate) fn open_copy_of(path: &Path) -> Result<Arc<Store>, StoreError> {
        let copy = guard::scratch_copy(path).map_err(|e| StoreError::Io {
            path: path.display().to_string(),
            detail: format!("cannot copy it to read it: {e}"),
        })?;
        let store = Store::open(&copy)?;
        store.scratch.store(true, Ordering::SeqCst);
        Ok(store)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A tree of its own in the same database for an application's data (a
    /// bank's accounts, say), so it lives and is flushed beside the engine's.
    /// The engine's own tree and sled's internal names are refused.
    pub(crate) fn app_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
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

    /// A new run sequence number, never handed out before by this store
    /// (a number taken by a start that was never committed may come back
    /// after a crash: nothing was written under it).
    pub(crate) fn next_run_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::SeqCst)
    }

    /// The engine time of the newest durable commit.
    pub(crate) fn engine_time_ms(&self) -> Result<Option<u64>, StoreError> {
        let v = self.tree.get(CLOCK_KEY).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Commits that wrote something.
    pub(crate) fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Whether anybody listens to the feed (a change nobody hears is not built).
    pub(crate) fn has_subscribers(&self) -> bool {
        self.feed.receiver_count() > 0
    }

    /// Subscribes to the change feed.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// Queues a transition's writes for the next group; returns the ticket
    /// to wait on with [`Store::durable`]. Nothing is visible in sled, or
    /// acknowledged, until that ticket is durable; `change` is announced on
    /// the feed then, in commit order. Callers order commits of one run
    /// themselves (the engine's lock).
    pub(crate) fn commit(&self, batch: WriteBatch, change: Option<Change>) -> u64 {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !batch.ops.is_empty() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        p.ops.extend(batch.ops);
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        p.ticket = ticket;
        if let Some(mut c) = change {
            c.commit = ticket;
            p.changes.push(c);
        }
        ticket
    }

    /// Takes every queued write as one sled batch, with the newest ticket it
    /// covers and the changes to announce once it is durable.
    fn take_pending(&self) -> (sled::Batch, u64, bool, Vec<Change>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ops = std::mem::take(&mut p.ops);
        let changes = std::mem::take(&mut p.changes);
        let any = !ops.is_empty();
        let mut b = sled::Batch::default();
        for (k, v) in ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        (b, p.ticket, any, changes)
    }

    /// The newest ticket handed out.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// How many fsyncs the store has done (group commit makes this far smaller than commits).
    pub(crate) fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Waits until everything up to `ticket` is flushed to disk.
    pub(crate) async fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        self.flushed_to(ticket, true).await
    }

    /// Waits until every commit up to `ticket` is on disk or, taken back by
    /// a crash, never will be: what a reader waits for before reading sled.
    pub(crate) async fn settled(&self, ticket: u64) -> Result<(), StoreError> {
        self.flushed_to(ticket, false).await
    }

    async fn flushed_to(&self, ticket: u64, lost_is_error: bool) -> Result<(), StoreError> {
        if lost_is_error {
            self.check_not_lost(ticket)?;
        }
        if self.durable_up_to.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let mut st = self.flush.clone().lock_owned().await;
        if lost_is_error {
            self.check_not_lost(ticket)?;
        }
        if let Some(e) = &st.failed {
            return Err(StoreError::Io {
                path: self.path.display().to_string(),
                detail: e.clone(),
            });
        }
        if st.flushed >= ticket {
            return Ok(());
        }
        let (batch, target, any, changes) = self.take_pending();
        let db = self.db.clone();
        let tree = self.tree.clone();
        let durable_up_to = self.durable_up_to.clone();
        let feed = self.feed.clone();
        let path = self.path.display().to_string();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        // The flush runs to its end in a task of its own, holding the flush
        // lock, even if whoever waits for it is dropped (a killed worker):
        // a flush cut short would write without announcing, or leave the
        // lock free while sled still writes.
        let flush = tokio::spawn(async move {
            let res = tokio::task::spawn_blocking(move || {
                if any {
                    tree.apply_batch(batch)?;
                }
                db.flush()
            })
            .await;
            match res {
                Ok(Ok(_)) => {
                    st.flushed = target;
                    durable_up_to.store(target, Ordering::SeqCst);
                    // Flushes are serialized by `st`, so changes go out in commit order.
                    for c in changes {
                        let _ = feed.send(c);
                    }
                    Ok(())
                }
                Ok(Err(e)) => {
                    let e = StoreError::from_sled(&path, e);
                    st.failed = Some(e.to_string());
                    Err(e)
                }
                Err(join) => {
                    st.failed = Some(join.to_string());
                    Err(StoreError::Io {
                        path,
                        detail: join.to_string(),
                    })
                }
            }
        });
        flush.await.map_err(|e| StoreError::Io {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        })?
    }

    fn check_not_lost(&self, ticket: u64) -> Result<(), StoreError> {
        if !self.any_lost.load(Ordering::Relaxed) {
            return Ok(());
        }
        let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
        if lost.iter().any(|&(from, to)| (from..=to).contains(&ticket)) {
            return Err(StoreError::LostInCrash {
                path: self.path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Holds off every flush (for a simulated crash, see [`Store::discard_pending`]).
    pub(crate) async fn lock_flushes(&self) -> tokio::sync::OwnedMutexGuard<FlushState> {
        self.flush.clone().lock_owned().await
    }

    /// Simulates the process dying, under the flush lock: what was
    /// committed but not yet flushed is gone (its waiters get
    /// [`StoreError::LostInCrash`]); sled then holds exactly what is on disk.
    pub(crate) fn discard_pending(&self, st: &mut FlushState) {
        let (_, newest, _, _) = self.take_pending();
        if newest > st.flushed {
            let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
            lost.push((st.flushed + 1, newest));
            self.any_lost.store(true, Ordering::SeqCst);
            // Nothing up to `newest` is left to write: a reader waiting for
            // everything so far has nothing to wait for.
            st.flushed = newest;
            self.durable_up_to.store(newest, Ordering::SeqCst);
        }
    }

    /// Applies and flushes everything committed so far (blocking).
    pub(crate) fn flush_blocking(&self) -> Result<(), StoreError> {
        let (batch, _, any, _) = self.take_pending();
        if any {
            self.tree.apply_batch(batch).map_err(|e| self.err(e))?;
        }
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    pub(crate) fn run(&self, seq: u64) -> Result<Option<RunState>, StoreError> {
        match self.tree.get(run_key(seq)).map_err(|e| self.err(e))? {
            Some(v) => decode(&v, &|| format!("run {seq}")).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn run_seq_of(&self, workflow_id: &str) -> Result<Option<u64>, StoreError> {
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

    /// Run sequence numbers in an index, newest first, below `before`
    /// (exclusive) when given.
    pub(crate) fn index_newest_first(
        &self,
        index: &RunIndex,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<u64, StoreError>> + '_ {
        let prefix = index.prefix();
        let start = index.key(0);
        let end = index.key(before.unwrap_or(u64::MAX));
        let inclusive_end = before.is_none();
        let n = prefix.len();
        let range = if inclusive_end {
            self.tree.range(start..=end)
        } else {
            self.tree.range(start..end)
        };
        range.rev().map(move |item| {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let seq = k
                .get(n..n + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::CorruptValue {
                    what: "a run index key".into(),
                    detail: format!("{} bytes", k.len()),
                })?;
            Ok(seq)
        })
    }

    /// Runs whose workflow id or type contains `text` (lowercase), newest
    /// first, below `before` (exclusive).
    pub(crate) fn seqs_with_text(
        &self,
        text: String,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<u64, StoreError>> + '_ {
        let end = text_key(before.unwrap_or(u64::MAX));
        let range = match before {
            Some(_) => self.tree.range(text_key(0)..end),
            None => self.tree.range(text_key(0)..=end),
        };
        range.rev().filter_map(move |item| match item {
            Err(e) => Some(Err(self.err(e))),
            Ok((k, v)) => {
                let hit = std::str::from_utf8(&v).is_ok_and(|s| s.contains(&text));
                let seq = u64::from_be_bytes(k[2..10].try_into().unwrap_or([0; 8]));
                hit.then_some(Ok(seq))
            }
        })
    }

    /// The runs in an index, newest first, below `before` (exclusive).
    pub(crate) fn runs_newest_first<'a>(
        &'a self,
        index: &RunIndex,
        before: Option<u64>,
    ) -> Box<dyn Iterator<Item = Result<RunState, StoreError>> + 'a> {
        if *index == RunIndex::All {
            let end = run_key(before.unwrap_or(u64::MAX));
            let range = match before {
                Some(_) => self.tree.range(run_key(0)..end),
                None => self.tree.range(run_key(0)..=end),
            };
            return Box::new(range.rev().map(move |item| {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let seq = u64::from_be_bytes(k[2..10].try_into().unwrap_or([0; 8]));
                decode(&v, &|| format!("run {seq}"))
            }));
        }
        Box::new(self.index_newest_first(index, before).map(move |seq| {
            let seq = seq?;
            self.run(seq)?.ok_or_else(|| StoreError::CorruptValue {
                what: format!("index entry of run {seq}"),
                detail: "points at no run".into(),
            })
        }))
    }

    /// The whole history of a run, checked to be numbered 1..n without gaps.
    pub(crate) fn history(&self, seq: u64) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history_from(seq, 1)
    }

    /// History events of a run with ids ≥ `from`.
    pub(crate) fn history_from(
        &self,
        seq: u64,
        from: u64,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history_page(seq, from, usize::MAX)
    }

    /// Up to `max` history events of a run with ids ≥ `from`.
    pub(crate) fn history_page(
        &self,
        seq: u64,
        from: u64,
        max: usize,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let mut out = Vec::new();
        let first = from.max(1);
        let start = event_key(seq, first);
        let end = event_key(seq, u64::MAX);
        let prefix = history_prefix(seq);
        for (expect, item) in (first..).zip(self.tree.range(start..end).take(max)) {
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
    /// Once sled has let go of the files, their fingerprint is left so the
    /// next open can tell a clean stop from damage (see [`guard`]).
    fn drop(&mut self) {
        if self.scratch.load(Ordering::SeqCst) {
            let _ = std::fs::remove_dir_all(&self.path);
            return;
        }
        // After a failed flush the store is left for the next open to check.
        let failed = self.flush.try_lock().map_or(true, |st| st.failed.is_some());
        if failed || self.flush_blocking().is_err() {
            return;
        }
        // Everything is on disk and nothing is dirty: sled writes nothing more
        // as it closes (if it did, the next open would only check, not refuse).
        let _ = guard::mark_clean(&self.path);
    }
}
