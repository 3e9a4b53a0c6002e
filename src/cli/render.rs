//! Text output in the shape of Temporal's CLI (`workflow show`, `describe`,
//! `list`), and the `holdfast workflow …` commands that print it.

use std::fmt::Write as _;

use crate::engine::{
    Clock, Engine, EngineConfig, HistoryEvent, ListFilter, Payload, WorkflowDescription,
    WorkflowExecutionInfo, WorkflowExecutionStatus, WorkflowOutcome,
};

/// Where the data lives.
#[derive(clap::Args, Debug)]
pub struct DataDirArg {
    /// Data directory.
    #[arg(long, default_value = "holdfast-data")]
    pub data_dir: std::path::PathBuf,
}

impl DataDirArg {
    /// Opens the data directory, which must exist: these commands never create one.
    fn open(&self) -> Result<Engine, crate::engine::StoreError> {
        Engine::open_existing(EngineConfig::new(&self.data_dir).clock(Clock::system()))
    }
}

/// Which run a command is about (`-w ID [-r RUN]`), as `temporal workflow` takes it.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    #[arg(short = 'w', long)]
    pub workflow_id: String,
    /// A run of the workflow; its newest run when omitted.
    #[arg(short = 'r', long)]
    pub run_id: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum WorkflowCmd {
    /// List workflow runs, newest first.
    List {
        #[command(flatten)]
        dir: DataDirArg,
        /// Only runs with this status (Running, Completed, Failed, …).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow type.
        #[arg(long = "type")]
        workflow_type: Option<String>,
        /// Only runs whose id or type contains this text (any case).
        #[arg(long)]
        text: Option<String>,
        /// Only runs with an activity retrying.
        #[arg(long)]
        retrying: bool,
        #[arg(long, default_value_t = 20, value_parser = super::at_least_one, allow_negative_numbers = true)]
        limit: usize,
    },
    /// Show a run's event history.
    Show(RunArgs),
    /// Describe a run: execution info and pending activities.
    Describe(RunArgs),
    /// Send a signal (recorded before this returns).
    Signal {
        #[command(flatten)]
        run: RunArgs,
        /// Signal name.
        #[arg(long)]
        name: String,
        /// Input as JSON.
        #[arg(short = 'i', long, default_value = "null")]
        input: String,
    },
    /// Request cancellation (the workflow code decides).
    Cancel(RunArgs),
    /// Terminate at once.
    Terminate {
        #[command(flatten)]
        run: RunArgs,
        #[arg(long, default_value = "terminated from the holdfast CLI")]
        reason: String,
    },
    /// Reset to a workflow task event: a new run continues from there.
    Reset {
        #[command(flatten)]
        run: RunArgs,
        /// A WorkflowTaskCompleted, Failed or TimedOut event id.
        #[arg(short = 'e', long, allow_negative_numbers = true)]
        event_id: u64,
        #[arg(long)]
        reason: String,
    },
}

/// Milliseconds since the epoch as `HH:MM:SS.mmm` (UTC).
pub fn clock_time(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

/// A `workflow show` style table: ID, Time, Type, details.
pub fn history_table(events: &[HistoryEvent]) -> String {
    let mut out =
        String::from("Progress:\n  ID  Time          Type                            Details\n");
    for e in events {
        let _ = writeln!(
            out,
            "  {:>2}  {}  {:<30}  {}",
            e.event_id,
            clock_time(e.event_time_ms),
            e.event_type().name(),
            e.attributes.summary()
        );
    }
    out
}

pub fn results_block(info: &WorkflowExecutionInfo, outcome: &WorkflowOutcome) -> String {
    let mut out = String::from("Results:\n");
    let run_ms = info.close_time_ms.unwrap_or(info.start_time_ms) - info.start_time_ms;
    let _ = writeln!(out, "  RunTime  {:.2}s", run_ms as f64 / 1000.0);
    let _ = writeln!(out, "  Status   {}", info.status.name().to_uppercase());
    match outcome {
        WorkflowOutcome::Completed(r) => {
            let _ = writeln!(out, "  Result   {r}");
        }
        WorkflowOutcome::Failed(f) => {
            let _ = writeln!(out, "  Failure  {f}");
        }
        WorkflowOutcome::Canceled | WorkflowOutcome::TimedOut => {}
        WorkflowOutcome::Terminated { reason } => {
            let _ = writeln!(out, "  Reason   {reason}");
        }
    }
    out
}

pub fn describe_block(d: &WorkflowDescription) -> String {
    let i = &d.info;
    let mut out = String::from("Execution Info:\n");
    for (k, v) in [
        ("WorkflowId", i.workflow_id.clone()),
        ("RunId", i.run_id.clone()),
        ("Type", i.workflow_type.clone()),
        ("TaskQueue", i.task_queue.clone()),
        ("Status", i.status.name().to_string()),
        ("StartTime", clock_time(i.start_time_ms)),
        ("StateTransitionCount", i.state_transition_count.to_string()),
        ("HistoryLength", i.history_length.to_string()),
        ("HistorySize", i.history_size_bytes.to_string()),
    ] {
        let _ = writeln!(out, "  {k:<21} {v}");
    }
    let _ = writeln!(out, "\nPending Activities: {}", d.pending_activities.len());
    for a in &d.pending_activities {
        let _ = writeln!(out);
        let mut kv = vec![
            ("ActivityId", a.activity_id.clone()),
            ("Type", a.activity_type.clone()),
            ("State", format!("{:?}", a.state)),
            ("Attempt", a.attempt.to_string()),
            ("MaximumAttempts", a.maximum_attempts.to_string()),
            ("ScheduledTime", clock_time(a.scheduled_time_ms)),
        ];
        if let Some(t) = a.last_started_time_ms {
            kv.push(("LastStartedTime", clock_time(t)));
        }
        if let Some(f) = &a.last_failure {
            kv.push(("LastFailure", f.to_string()));
        }
        if !a.last_worker_identity.is_empty() {
            kv.push(("LastWorkerIdentity", a.last_worker_identity.clone()));
        }
        for (k, v) in kv {
            let _ = writeln!(out, "  {k:<19} {v}");
        }
    }
    if let Some(w) = &d.pending_workflow_task {
        let _ = writeln!(
            out,
            "\nPending Workflow Task:\n  State    {}\n  Attempt  {}",
            if w.started { "Started" } else { "Scheduled" },
            w.attempt
        );
        if let Some((cause, failure)) = &w.last_failure {
            let _ = writeln!(
                out,
                "  LastFailure  {cause:?}: {}",
                crate::text::one_line(&failure.message)
            );
        }
    }
    out
}

pub async fn run(cmd: WorkflowCmd) -> Result<(), Box<dyn std::error::Error>> {
    const IDENTITY: &str = "holdfast-cli";
    match cmd {
        WorkflowCmd::List {
            dir,
            status,
            workflow_type,
            text,
            retrying,
            limit,
        } => {
            let status = match status {
                Some(s) => Some(WorkflowExecutionStatus::parse(&s).ok_or_else(|| {
                    format!("unknown status {s:?}; use Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew or TimedOut")
                })?),
                None => None,
            };
            let engine = dir.open()?;
            let filter = ListFilter {
                status,
                workflow_type,
                text,
                retrying,
            };
            let page = engine.list(&filter, limit, None).await?;
            println!("  Status      WorkflowId                Type                StartTime");
            for e in page.executions {
                println!(
                    "  {:<10}  {:<24}  {:<18}  {}",
                    e.status.name(),
                    e.workflow_id,
                    e.workflow_type,
                    clock_time(e.start_time_ms)
                );
            }
        }
        WorkflowCmd::Show(r) => {
            let events = r
                .dir
                .open()?
                .history(&r.workflow_id, r.run_id.as_deref())
                .await?;
            print!("{}", history_table(&events));
        }
        WorkflowCmd::Describe(r) => {
            let d = r
                .dir
                .open()?
                .describe(&r.workflow_id, r.run_id.as_deref())
                .await?;
            print!("{}", describe_block(&d));
        }
        WorkflowCmd::Signal {
            run: r,
            name,
            input,
        } => {
            serde_json::from_str::<serde_json::Value>(&input)
                .map_err(|e| format!("--input is not JSON: {e}"))?;
            r.dir
                .open()?
                .signal(
                    &r.workflow_id,
                    r.run_id.as_deref(),
                    &name,
                    Payload(input),
                    IDENTITY,
                )
                .await?;
            println!("Signal workflow succeeded");
        }
        WorkflowCmd::Cancel(r) => {
            r.dir
                .open()?
                .cancel(&r.workflow_id, r.run_id.as_deref(), IDENTITY)
                .await?;
            println!("Canceled workflow");
        }
        WorkflowCmd::Terminate { run: r, reason } => {
            r.dir
                .open()?
                .terminate(&r.workflow_id, r.run_id.as_deref(), &reason, IDENTITY)
                .await?;
            println!("Workflow terminated");
        }
        WorkflowCmd::Reset {
            run: r,
            event_id,
            reason,
        } => {
            let engine = r.dir.open()?;
            let h = engine
                .reset(&r.workflow_id, r.run_id.as_deref(), event_id, &reason)
                .await?;
            println!(
                "Reset workflow {} to event ID {event_id}; new run: {}",
                r.workflow_id, h.run_id
            );
        }
    }
    Ok(())
}
