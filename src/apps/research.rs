//! The AI research report of Temporal's durable-AI tutorial, on holdfast's
//! engine: `llm_call` (a real chat completion over HTTP, or the offline
//! model), a person's decision (query the draft; keep it, or ask for an
//! edit and the model is called again), `create_pdf` (a real PDF) and
//! `send_email` (a real `.eml` in the outbox). The expensive LLM call is
//! recorded in history once it succeeds: whatever fails after it, it is
//! never paid for twice.

pub mod email;
pub mod llm;
pub mod pdf;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use llm::{ApiKey, Completion, Llm, LlmConfig, LlmError};

use crate::apps::faults::{Fault, Faults};
use crate::apps::files;
use crate::engine::{
    ActivityContext, ApplicationError, Engine, EngineError, Payload, RetryPolicy, RunHandle,
    StartWorkflowOptions, WfContext, Worker, WorkflowError, WorkflowIdConflictPolicy,
    activity_options,
};

/// The tutorial template's task queue.
pub const QUEUE: &str = "research";
pub const WORKFLOW_TYPE: &str = "GenerateReportWorkflow";
/// The tutorial's workflow id prefix (without its typo).
pub const WORKFLOW_ID_PREFIX: &str = "generate-research-report-workflow";
pub const SIGNAL: &str = "user_decision_signal";
pub const QUERY_RESULT: &str = "get_research_result";
pub const QUERY_STATUS: &str = "get_status";
/// The reports' folder and the outbox, inside the data directory.
pub const REPORTS_DIR: &str = "reports";
pub const OUTBOX_DIR: &str = "outbox";
/// What the e-mail outage makes `send_email` fail with.
pub const EMAIL_OUTAGE_MESSAGE: &str = "Email service temporarily unavailable";

/// The workflow's input: the tutorial's `GenerateReportInput`, plus whether
/// a person approves the draft (part 2 of the tutorial) and where it goes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GenerateReportInput {
    pub prompt: String,
    /// Wait for a person's decision before the PDF (default: yes).
    #[serde(default = "yes")]
    pub approval: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_to: Option<String>,
    /// The PDF's name in `reports/`; default: from the workflow id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// How long one model call may take (the model's `LLM_TIMEOUT` when the
    /// run started): `llm_call`'s start-to-close timeout follows from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_timeout_secs: Option<u64>,
}

/// Attempts `llm_call` makes before the run fails with the last error.
pub const LLM_MAX_ATTEMPTS: u32 = 5;

fn yes() -> bool {
    true
}

impl GenerateReportInput {
    pub fn new(prompt: impl Into<String>) -> Self {
        GenerateReportInput {
            prompt: prompt.into(),
            approval: true,
            email_to: None,
            file_name: None,
            llm_timeout_secs: None,
        }
    }

    /// Fixes how long one model call may take for this run.
    pub fn with_llm_timeout(mut self, timeout: Duration) -> Self {
        self.llm_timeout_secs = Some(timeout.as_secs().max(1));
        self
    }

    pub fn without_approval(mut self) -> Self {
        self.approval = false;
        self
    }

    /// Refuses what cannot work: checked before a run starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.prompt.trim().is_empty() {
            return Err("the prompt is empty".into());
        }
        if self.prompt.len() > MAX_PROMPT_BYTES {
            return Err(format!(
                "the prompt is {} bytes; at most {MAX_PROMPT_BYTES}",
                self.prompt.len()
            ));
        }
        if let Some(to) = &self.email_to {
            email::parse_address(to)?;
        }
        if let Some(name) = &self.file_name {
            files::safe_file_name(name, "pdf")?;
        }
        Ok(())
    }
}

/// The tutorial's `UserDecision`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum UserDecision {
    Keep,
    Edit,
    Wait,
}

/// The tutorial's `UserDecisionSignal`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UserDecisionSignal {
    pub decision: UserDecision,
    #[serde(default)]
    pub additional_prompt: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LlmCallInput {
    pub prompt: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PdfGenerationInput {
    pub prompt: String,
    pub content: String,
    pub model: String,
    pub file_name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SendEmailInput {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The PDF in `reports/`.
    pub pdf_file: String,
}

/// The tutorial's `GenerateReportOutput`, with where the report went.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GenerateReportOutput {
    pub result: String,
    pub pdf: String,
    pub email: String,
}

/// What the activities need: the model, the data directory, the faults.
#[derive(Clone, Debug)]
pub struct ResearchDeps {
    pub llm: Llm,
    pub data_dir: PathBuf,
    pub faults: Arc<Faults>,
    /// How long the offline model "thinks" (on the engine's clock), so a
    /// person can kill the worker mid-call.
    pub offline_think: Duration,
}

impl ResearchDeps {
    pub fn new(llm: Llm, data_dir: impl Into<PathBuf>, faults: Arc<Faults>) -> Self {
        ResearchDeps {
            llm,
            data_dir: data_dir.into(),
            faults,
            offline_think: Duration::from_secs(2),
        }
    }

    pub fn reports_dir(&self) -> PathBuf {
        self.data_dir.join(REPORTS_DIR)
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join(OUTBOX_DIR)
    }
}

fn fault_note(f: Fault) -> String {
    format!(" (fault: {})", f.name())
}

async fn llm_call(
    deps: ResearchDeps,
    ctx: ActivityContext,
    input: LlmCallInput,
) -> Result<Completion, ApplicationError> {
    tracing::info!(
        workflow_id = %ctx.workflow_id,
        attempt = ctx.attempt,
        model = %deps.llm.label(),
        "llm_call"
    );
    if deps.faults.is_on(Fault::LlmSlow) {
        // Longer than the attempt's start-to-close: the engine times it out.
        ctx.sleep(ctx.start_to_close_timeout + Duration::from_secs(1))
            .await;
    }
    if deps.faults.is_on(Fault::LlmFailing) {
        return Err(ApplicationError::retryable(
            "LlmServerError",
            format!(
                "the endpoint failed: HTTP 503 Service Unavailable{}",
                fault_note(Fault::LlmFailing)
            ),
        ));
    }
    if deps.llm.is_offline() {
        ctx.sleep(deps.offline_think).await;
    }
    let mut completion = deps.llm.complete(&input.prompt).await.map_err(|e| {
        tracing::warn!(workflow_id = %ctx.workflow_id, attempt = ctx.attempt, "llm_call failed: {e}");
        let wait = e.retry_after;
        let err = if e.retryable {
            ApplicationError::retryable(e.error_type, e.message)
        } else {
            ApplicationError::non_retryable(e.error_type, e.message)
        };
        match wait {
            // The server said when to come back: the next attempt waits that long.
            Some(w) => err.with_next_retry_delay(w),
            None => err,
        }
    })?;
    bound_draft(&mut completion.content);
    Ok(completion)
}

/// The most a draft holds: with the prompt it must fit the 2 MiB payload
/// limit of `create_pdf`'s input, with room to spare.
pub const MAX_DRAFT_BYTES: usize = 512 * 1024;
/// The most a prompt, or an edit's instructions, holds.
pub const MAX_PROMPT_BYTES: usize = 20_000;

/// Cuts an over-long answer (it was paid for: it is kept, not retried) and
/// says so in the text, so no later step carries more than the limit.
fn bound_draft(draft: &mut String) {
    if draft.len() <= MAX_DRAFT_BYTES {
        return;
    }
    let total = draft.len();
    let cut = (0..=MAX_DRAFT_BYTES)
        .rev()
        .find(|&i| draft.is_char_boundary(i))
        .unwrap_or(0);
    draft.truncate(cut);
    draft.push_str(&format!(
        "\n\n[truncated by holdfast: the model's answer was {total} bytes; a report holds at most {MAX_DRAFT_BYTES}]"
    ));
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApplicationError> + Send + 'static,
) -> Result<T, ApplicationError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApplicationError::retryable("WorkerError", e.to_string()))?
}

async fn create_pdf(
    deps: ResearchDeps,
    _ctx: ActivityContext,
    input: PdfGenerationInput,
) -> Result<String, ApplicationError> {
    let name = files::safe_file_name(&input.file_name, "pdf")
        .map_err(|m| ApplicationError::non_retryable("InvalidFileNameError", m))?;
    let fail_write = deps.faults.is_on(Fault::PdfWriteError);
    let dir = deps.reports_dir();
    blocking(move || {
        let (bytes, _) = pdf::render(&pdf::Report {
            title: "Research Report",
            prompt: &input.prompt,
            model: &input.model,
            text: &input.content,
        });
        let written = if fail_write {
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        } else {
            files::write_atomic(&dir, &name, &bytes)
        };
        written.map_err(|e| {
            let note = if fail_write {
                fault_note(Fault::PdfWriteError)
            } else {
                String::new()
            };
            ApplicationError::retryable(
                "PdfWriteError",
                format!("cannot write {REPORTS_DIR}/{name}: {e}{note}"),
            )
        })?;
        Ok(name)
    })
    .await
}

async fn send_email(
    deps: ResearchDeps,
    ctx: ActivityContext,
    input: SendEmailInput,
) -> Result<String, ApplicationError> {
    if deps.faults.is_on(Fault::EmailOutage) {
        tracing::warn!(workflow_id = %ctx.workflow_id, attempt = ctx.attempt, "send_email failed: {EMAIL_OUTAGE_MESSAGE}");
        return Err(ApplicationError::retryable(
            "EmailServiceError",
            EMAIL_OUTAGE_MESSAGE,
        ));
    }
    let pdf_name = files::safe_file_name(&input.pdf_file, "pdf")
        .map_err(|m| ApplicationError::non_retryable("InvalidFileNameError", m))?;
    // One message per run: a retry rewrites the same file.
    let eml_name = files::file_name_for_run(&ctx.workflow_id, &ctx.run_id, "eml");
    let reports = deps.reports_dir();
    let outbox = deps.outbox_dir();
    blocking(move || {
        let pdf = std::fs::read(reports.join(&pdf_name)).map_err(|e| {
            ApplicationError::retryable(
                "MissingReportError",
                format!("cannot read {REPORTS_DIR}/{pdf_name}: {e}"),
            )
        })?;
        let message = email::compose(&input.to, &input.subject, &input.body, &pdf_name, pdf)
            .map_err(|m| ApplicationError::non_retryable("InvalidEmailError", m))?;
        files::write_atomic(&outbox, &eml_name, &message).map_err(|e| {
            ApplicationError::retryable(
                "EmailServiceError",
                format!("cannot write {OUTBOX_DIR}/{eml_name}: {e}"),
            )
        })?;
        Ok(format!("{OUTBOX_DIR}/{eml_name}"))
    })
    .await
}

/// What the workflow tells a query about where it is.
#[derive(Default)]
struct Progress {
    draft: Option<String>,
    status: String,
}

/// The tutorial's `GenerateReportWorkflow` (with its human-in-the-loop
/// part), then the e-mail.
pub async fn generate_report(
    ctx: WfContext,
    input: GenerateReportInput,
) -> Result<GenerateReportOutput, WorkflowError> {
    let progress = Arc::new(Mutex::new(Progress {
        draft: None,
        status: "researching".into(),
    }));
    let set_status = |s: &str| {
        if let Ok(mut p) = progress.lock() {
            p.status = s.to_string();
        }
    };
    {
        let p = progress.clone();
        ctx.set_query_handler(QUERY_RESULT, move |_: ()| {
            p.lock().ok().and_then(|p| p.draft.clone())
        });
        let p = progress.clone();
        ctx.set_query_handler(QUERY_STATUS, move |_: ()| {
            p.lock().map(|p| p.status.clone()).unwrap_or_default()
        });
    }
    let decisions = ctx.signal_channel::<UserDecisionSignal>(SIGNAL);
    let mut prompt = input.prompt.clone();
    // One call may take the model's timeout (LLM_TIMEOUT, fixed when the run
    // started); the attempt gets a margin on top. A model that never answers
    // in time ends the run with a clear failure after a few attempts instead
    // of being paid forever.
    let call_timeout = Duration::from_secs(input.llm_timeout_secs.unwrap_or(120));
    let llm_opts = activity_options()
        .start_to_close(call_timeout + Duration::from_secs(15))
        .retry(RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(60),
            maximum_attempts: LLM_MAX_ATTEMPTS,
            ..RetryPolicy::default()
        });
    let research = loop {
        set_status("researching");
        let research: Completion = ctx
            .activity(
                "llm_call",
                &LlmCallInput {
                    prompt: prompt.clone(),
                },
                llm_opts.clone(),
            )
            .await?;
        if let Ok(mut p) = progress.lock() {
            p.draft = Some(research.content.clone());
        }
        if !input.approval {
            break research;
        }
        set_status("waiting for your decision: keep, or edit with more instructions");
        // Like the tutorial's wait_condition on a field the signal sets:
        // the newest decision wins, and WAIT keeps waiting.
        let mut decision = decisions.recv().await?;
        loop {
            while let Some(newer) = decisions.try_recv() {
                decision = newer;
            }
            if decision.decision != UserDecision::Wait {
                break;
            }
            decision = decisions.recv().await?;
        }
        match decision.decision {
            UserDecision::Keep => break research,
            _ => {
                let extra = decision.additional_prompt.trim();
                if !extra.is_empty() {
                    prompt.push_str(&format!("\n\nAdditional instructions: {extra}"));
                }
            }
        }
    };
    set_status("writing the PDF");
    let file_name = input.file_name.clone().unwrap_or_else(|| {
        let info = ctx.info();
        files::file_name_for_run(&info.workflow_id, &info.run_id, "pdf")
    });
    let pdf_opts = activity_options()
        .start_to_close(Duration::from_secs(20))
        .retry(RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_attempts: 3,
            ..RetryPolicy::default()
        });
    let pdf_file: String = ctx
        .activity(
            "create_pdf",
            &PdfGenerationInput {
                prompt: prompt.clone(),
                content: research.content.clone(),
                model: research.model.clone(),
                file_name,
            },
            pdf_opts,
        )
        .await?;
    set_status("sending the e-mail");
    let to = input
        .email_to
        .clone()
        .unwrap_or_else(|| email::DEFAULT_TO.to_string());
    let headline: String = input.prompt.chars().take(60).collect();
    let email_opts = activity_options()
        .start_to_close(Duration::from_secs(20))
        .retry(RetryPolicy {
            maximum_interval: Duration::from_secs(10),
            ..RetryPolicy::default()
        });
    let sent: String = ctx
        .activity(
            "send_email",
            &SendEmailInput {
                to,
                subject: format!("Research report: {headline}"),
                body: format!(
                    "Your research report is attached ({pdf_file}).\n\nPrompt: {}\nWritten by: {}\n",
                    input.prompt, research.model
                ),
                pdf_file: pdf_file.clone(),
            },
            email_opts,
        )
        .await?;
    set_status("done");
    Ok(GenerateReportOutput {
        result: format!("Successfully created research report PDF: {pdf_file}"),
        pdf: format!("{REPORTS_DIR}/{pdf_file}"),
        email: sent,
    })
}

/// Makes the workflow type known with a check of its input.
pub fn register_type(engine: &Engine) {
    engine.register_workflow_type(
        WORKFLOW_TYPE,
        Arc::new(|p: &Payload| {
            let input: GenerateReportInput = p
                .to_value()
                .map_err(|e| format!("this is not a report request: {e}"))?;
            input.validate()
        }),
    );
}

/// Registers the workflow and its three activities.
pub fn register(engine: &Engine, worker: &mut Worker, deps: &ResearchDeps) {
    worker.register_workflow(WORKFLOW_TYPE, generate_report);
    let d = deps.clone();
    worker.register_activity("llm_call", move |ctx, i| llm_call(d.clone(), ctx, i));
    let d = deps.clone();
    worker.register_activity("create_pdf", move |ctx, i| create_pdf(d.clone(), ctx, i));
    let d = deps.clone();
    worker.register_activity("send_email", move |ctx, i| send_email(d.clone(), ctx, i));
    register_type(engine);
}

/// Starts a report; an existing running workflow of that id is re-attached
/// to, as the tutorial's starter does (USE_EXISTING).
pub async fn start_report(
    engine: &Engine,
    workflow_id: &str,
    input: &GenerateReportInput,
) -> Result<RunHandle, EngineError> {
    let payload = Payload::from_value(input).map_err(|e| EngineError::InvalidInput {
        workflow_type: WORKFLOW_TYPE.into(),
        detail: e.to_string(),
    })?;
    let mut opts = StartWorkflowOptions::new(workflow_id, WORKFLOW_TYPE, QUEUE, payload);
    opts.id_conflict_policy = WorkflowIdConflictPolicy::UseExisting;
    engine.start_workflow(opts).await
}

/// Sends the person's decision.
pub async fn decide(
    engine: &Engine,
    workflow_id: &str,
    decision: UserDecision,
    additional_prompt: &str,
) -> Result<(), EngineError> {
    if additional_prompt.len() > MAX_PROMPT_BYTES {
        return Err(EngineError::InvalidArgument(format!(
            "the edit instructions are {} bytes; at most {MAX_PROMPT_BYTES}, as a prompt",
            additional_prompt.len()
        )));
    }
    let signal = UserDecisionSignal {
        decision,
        additional_prompt: additional_prompt.to_string(),
    };
    let payload = Payload::from_value(&signal).map_err(|e| EngineError::InvalidInput {
        workflow_type: WORKFLOW_TYPE.into(),
        detail: e.to_string(),
    })?;
    engine
        .signal(workflow_id, None, SIGNAL, payload, "holdfast")
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer of any size leaves every later step under the payload
    /// limit: it is cut, and the text says so.
    #[test]
    fn a_huge_answer_is_cut_and_marked() {
        let mut draft = "é".repeat(MAX_DRAFT_BYTES);
        bound_draft(&mut draft);
        assert!(draft.len() < MAX_DRAFT_BYTES + 200);
        assert!(draft.ends_with(&format!("a report holds at most {MAX_DRAFT_BYTES}]")));
        let input = PdfGenerationInput {
            prompt: "p".repeat(MAX_PROMPT_BYTES * 2),
            content: draft,
            model: String::new(),
            file_name: "r.pdf".into(),
        };
        let payload = Payload::from_value(&input).unwrap();
        assert!(payload.len() < crate::engine::BLOB_SIZE_LIMIT);
    }
}
