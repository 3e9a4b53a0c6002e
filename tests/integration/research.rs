//! The AI research report: `llm_call` against a local server that speaks
//! the chat completions protocol (the request, retries on 429/500, the
//! non-retryable 401, a timeout), the PDF read back with a PDF text
//! extractor, the `.eml` parsed with its attachment, the approval step
//! (query, edit, keep), and the e-mail outage: send_email retried while
//! the expensive llm_call is made exactly once.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::llm_server::{LlmServer, Reply};
use common::virtual_engine;
use holdfast::apps::faults::{Fault, Faults};
use holdfast::apps::files;
use holdfast::apps::research::{
    self, GenerateReportInput, GenerateReportOutput, Llm, LlmConfig, ResearchDeps, UserDecision,
    llm, pdf,
};
use holdfast::engine::{
    Engine, EngineError, EventAttributes, Payload, Worker, WorkerHandle, WorkerOptions,
    WorkflowOutcome,
};
use mail_parser::MimeHeaders;

const KEY: &str = "sk-test-secret-0123456789";

fn http_llm(server: &LlmServer) -> Llm {
    Llm::http(LlmConfig::new(&server.base_url, "test-model").api_key(KEY)).unwrap()
}

fn worker(engine: &Engine, llm: Llm, faults: &Arc<Faults>) -> (WorkerHandle, ResearchDeps) {
    let data = engine.data_dir().to_path_buf();
    let deps = ResearchDeps::new(llm, data, faults.clone());
    let mut w = Worker::new(
        engine,
        WorkerOptions::new(research::QUEUE, "research-worker"),
    );
    research::register(engine, &mut w, &deps);
    (w.start(), deps)
}

async fn completed(engine: &Engine, id: &str) -> GenerateReportOutput {
    match engine.result(id, None).await.unwrap() {
        WorkflowOutcome::Completed(p) => p.to_value().unwrap(),
        other => panic!("{id}: expected completion, got {other:?}"),
    }
}

/// The text of a PDF, as a PDF text extractor reads it, whitespace normalized.
fn pdf_text(bytes: &[u8]) -> (String, usize) {
    let doc = lopdf::Document::load_mem(bytes).expect("a PDF lopdf can read");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).expect("text extracts");
    (normalize(&text), pages.len())
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(start_paused = true)]
async fn llm_request_carries_model_messages_and_bearer_auth() {
    let server = LlmServer::start(vec![Reply::Content("Kelp forests.".into())], Reply::Hang).await;
    let out = http_llm(&server)
        .complete("Tell me about kelp")
        .await
        .unwrap();
    assert_eq!(out.content, "Kelp forests.");
    assert_eq!(out.model, format!("test-model via {}", server.base_url));
    assert!(!out.offline);
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        seen[0].body,
        serde_json::json!({"model": "test-model",
                           "messages": [{"role": "user", "content": "Tell me about kelp"}]})
    );
}

#[tokio::test(start_paused = true)]
async fn llm_errors_say_whether_a_retry_can_help_and_never_show_the_key() {
    let server = LlmServer::start(
        vec![
            Reply::Status(429, r#"{"error":{"message":"Rate limit reached"}}"#.into()),
            Reply::Status(500, "upstream exploded".into()),
            Reply::Status(
                401,
                format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#),
            ),
            Reply::Status(400, r#"{"error":{"message":"bad model"}}"#.into()),
            Reply::Content("   ".into()),
            Reply::Hang,
        ],
        Reply::Hang,
    )
    .await;
    let mut config = LlmConfig::new(&server.base_url, "test-model").api_key(KEY);
    config.timeout = Duration::from_secs(5);
    let llm = Llm::http(config).unwrap();
    let expect = [
        ("LlmRateLimitedError", true, "HTTP 429"),
        ("LlmServerError", true, "HTTP 500"),
        ("LlmAuthError", false, "check LLM_API_KEY"),
        ("LlmBadRequestError", false, "HTTP 400"),
        // Paid for, empty: not retried as if the endpoint had failed.
        ("LlmEmptyAnswerError", false, "answered with no text"),
        ("LlmTimeoutError", true, "no answer within 5s"),
    ];
    for (ty, retryable, needle) in expect {
        let e = llm.complete("q").await.unwrap_err();
        assert_eq!((e.error_type, e.retryable), (ty, retryable), "{e}");
        assert!(e.message.contains(needle), "{e}");
        assert!(!e.message.contains(KEY), "key leaked: {e}");
    }
    // Nobody listening: retryable, says where.
    let closed = Llm::http(LlmConfig::new("http://127.0.0.1:9/v1", "m")).unwrap();
    let e = closed.complete("q").await.unwrap_err();
    assert_eq!(
        (e.error_type, e.retryable),
        ("LlmUnreachableError", true),
        "{e}"
    );
    assert!(e.message.contains("127.0.0.1:9"), "{e}");
    // Debug output of the config hides the key too.
    let shown = format!("{:?}", LlmConfig::new("u", "m").api_key(KEY));
    assert!(!shown.contains(KEY) && shown.contains("***"), "{shown}");
}

/// 429 then 500: the engine retries llm_call (default policy) and the run
/// completes; history shows one start, attempt 3, with the last failure.
#[tokio::test(start_paused = true)]
async fn engine_retries_llm_call_after_429_and_500() {
    let (engine, _dir) = virtual_engine();
    let server = LlmServer::start(
        vec![
            Reply::Status(429, "slow down".into()),
            Reply::Status(503, "overloaded".into()),
            Reply::Content("Coral reefs need cool water.".into()),
        ],
        Reply::Hang,
    )
    .await;
    let faults = Arc::new(Faults::new());
    let (_w, deps) = worker(&engine, http_llm(&server), &faults);
    let input = GenerateReportInput::new("Coral reefs").without_approval();
    research::start_report(&engine, "r1", &input).await.unwrap();
    let out = completed(&engine, "r1").await;
    assert_eq!(server.requests().len(), 3);
    let h = engine.history("r1", None).await.unwrap();
    let sig = common::signature_of(&h);
    let want = format!(
        "ActivityTaskStarted attempt=3 lastFailure=LlmServerError:the endpoint failed: HTTP 503 Service Unavailable from {}/chat/completions: overloaded",
        server.base_url
    );
    assert!(sig.contains(&want), "{sig:#?}");
    let bytes = std::fs::read(deps.data_dir.join(&out.pdf)).unwrap();
    let (text, _) = pdf_text(&bytes);
    assert!(text.contains("Coral reefs need cool water."), "{text}");
}

/// A log line capture for one test (no globals).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn rejected_key_fails_the_run_at_once_and_stays_secret() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (engine, _dir) = virtual_engine();
    let server = LlmServer::start(
        vec![Reply::Status(
            401,
            format!("Incorrect API key provided: {KEY}"),
        )],
        Reply::Hang,
    )
    .await;
    let faults = Arc::new(Faults::new());
    let (_w, _) = worker(&engine, http_llm(&server), &faults);
    let input = GenerateReportInput::new("Kelp").without_approval();
    research::start_report(&engine, "r401", &input)
        .await
        .unwrap();
    let WorkflowOutcome::Failed(f) = engine.result("r401", None).await.unwrap() else {
        panic!("expected failure")
    };
    assert_eq!(f.root_cause().error_type(), Some("LlmAuthError"));
    assert_eq!(server.requests().len(), 1, "not retried");
    let h = engine.history("r401", None).await.unwrap();
    assert!(
        common::signature_of(&h)
            .iter()
            .any(|l| l.contains("RETRY_STATE_NON_RETRYABLE_FAILURE"))
    );
    let describe = engine.describe("r401", None).await.unwrap();
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("llm_call"), "logs captured: {logged}");
    for (what, text) in [
        ("history", format!("{h:?}")),
        ("describe", format!("{describe:?}")),
        ("logs", logged),
    ] {
        assert!(!text.contains(KEY), "the key reached the {what}");
    }
}

/// The approval step: the query returns the draft; EDIT calls the model
/// again with the extra instructions; KEEP goes on to the PDF and e-mail.
#[tokio::test(start_paused = true)]
async fn a_person_queries_the_draft_asks_for_an_edit_then_keeps_it() {
    let (engine, _dir) = virtual_engine();
    let server = LlmServer::start(
        vec![
            Reply::Content("Draft one about tides.".into()),
            Reply::Content("Draft two, now with costs.".into()),
        ],
        Reply::Hang,
    )
    .await;
    let faults = Arc::new(Faults::new());
    let (_w, deps) = worker(&engine, http_llm(&server), &faults);
    let input = GenerateReportInput::new("Tidal power");
    research::start_report(&engine, "hitl", &input)
        .await
        .unwrap();
    let draft = |want: &'static str| {
        let engine = engine.clone();
        async move {
            for _ in 0..200 {
                let p = engine
                    .query(
                        "hitl",
                        None,
                        research::QUERY_RESULT,
                        Payload::from_value(&()).unwrap(),
                    )
                    .await
                    .unwrap();
                if p.to_value::<Option<String>>().unwrap().as_deref() == Some(want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the draft never became {want:?}");
        }
    };
    draft("Draft one about tides.").await;
    // It waits for a decision: nothing else happens meanwhile.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(server.requests().len(), 1);
    research::decide(&engine, "hitl", UserDecision::Edit, "focus on costs")
        .await
        .unwrap();
    draft("Draft two, now with costs.").await;
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].body["messages"][0]["content"],
        "Tidal power\n\nAdditional instructions: focus on costs"
    );
    research::decide(&engine, "hitl", UserDecision::Keep, "")
        .await
        .unwrap();
    let out = completed(&engine, "hitl").await;
    assert_eq!(
        out.result,
        "Successfully created research report PDF: hitl-1.pdf"
    );
    let (text, _) = pdf_text(&std::fs::read(deps.data_dir.join(&out.pdf)).unwrap());
    assert!(text.contains("Draft two, now with costs."), "{text}");
    assert!(
        text.contains("Additional instructions: focus on costs"),
        "{text}"
    );
}

/// The e-mail service is down: send_email is retried; llm_call was made
/// exactly once and is never made again; clearing the outage completes it.
#[tokio::test(start_paused = true)]
async fn email_outage_retries_send_email_and_never_pays_for_the_llm_twice() {
    let (engine, _dir) = virtual_engine();
    let server = LlmServer::start(
        vec![Reply::Content(
            "Solar sails work by photon pressure.".into(),
        )],
        Reply::Status(500, "a second call was made".into()),
    )
    .await;
    let faults = Arc::new(Faults::new());
    faults.set(Fault::EmailOutage, true).unwrap();
    let (_w, deps) = worker(&engine, http_llm(&server), &faults);
    let mut input = GenerateReportInput::new("Solar sails").without_approval();
    input.email_to = Some("Ada <ada@example.com>".into());
    research::start_report(&engine, "outage", &input)
        .await
        .unwrap();
    let mut attempts = 0;
    for _ in 0..500 {
        let d = engine.describe("outage", None).await.unwrap();
        if let Some(a) = d
            .pending_activities
            .iter()
            .find(|a| a.activity_type == "send_email")
        {
            attempts = a.attempt;
            if attempts >= 5 {
                assert_eq!(
                    a.last_failure.as_ref().map(|f| f.message.as_str()),
                    Some(research::EMAIL_OUTAGE_MESSAGE)
                );
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        attempts >= 5,
        "send_email was retried ({attempts} attempts)"
    );
    assert_eq!(server.requests().len(), 1, "llm_call made exactly once");
    assert!(
        !deps.outbox_dir().exists()
            || std::fs::read_dir(deps.outbox_dir())
                .unwrap()
                .next()
                .is_none()
    );
    faults.set(Fault::EmailOutage, false).unwrap();
    let out = completed(&engine, "outage").await;
    assert_eq!(server.requests().len(), 1, "still exactly once");
    assert_eq!(out.email, "outbox/outage-1.eml");
    let pdf_bytes = std::fs::read(deps.data_dir.join(&out.pdf)).unwrap();
    let eml = std::fs::read(deps.data_dir.join(&out.email)).unwrap();
    let message = mail_parser::MessageParser::default()
        .parse(&eml)
        .expect("the .eml parses");
    assert_eq!(message.subject(), Some("Research report: Solar sails"));
    let to = message.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some("ada@example.com"));
    let attachment = message.attachments().next().expect("an attachment");
    assert_eq!(attachment.attachment_name(), Some("outage-1.pdf"));
    assert_eq!(attachment.contents(), &pdf_bytes[..]);
    assert!(
        message
            .body_text(0)
            .is_some_and(|b| b.contains("Your research report is attached"))
    );
    // Only one llm_call completion in history.
    let h = engine.history("outage", None).await.unwrap();
    let completions = h
        .iter()
        .filter(|e| matches!(e.attributes, EventAttributes::ActivityTaskCompleted { .. }))
        .count();
    assert_eq!(completions, 3, "llm_call, create_pdf, send_email each once");
}

#[tokio::test(start_paused = true)]
async fn offline_model_runs_the_story_with_no_network_and_says_so() {
    let (engine, _dir) = virtual_engine();
    let faults = Arc::new(Faults::new());
    let (_w, deps) = worker(&engine, Llm::Offline, &faults);
    let input = GenerateReportInput::new("The history of the lighthouse").without_approval();
    research::start_report(&engine, "offline", &input)
        .await
        .unwrap();
    let out = completed(&engine, "offline").await;
    let (text, _) = pdf_text(&std::fs::read(deps.data_dir.join(&out.pdf)).unwrap());
    assert!(text.contains(llm::OFFLINE_LABEL), "{text}");
    assert!(text.contains("The history of the lighthouse"), "{text}");
    assert!(deps.data_dir.join(&out.email).is_file());
}

#[test]
fn the_pdf_wraps_long_research_across_pages_and_reads_back() {
    let paragraph = "Durable execution records every step's result in an event history, so a crashed program resumes where it stopped instead of starting over. ";
    let text: Vec<String> = (0..40)
        .map(|i| format!("Paragraph {i}. {}", paragraph.repeat(3)))
        .collect();
    let text = text.join("\n\n");
    let (bytes, pages) = pdf::render(&pdf::Report {
        title: "Research Report",
        prompt: "Why durable execution?",
        model: "test-model",
        text: &text,
    });
    assert!(bytes.starts_with(b"%PDF-"));
    assert!(pages >= 3, "{pages} pages");
    let (mut read, page_count) = pdf_text(&bytes);
    assert_eq!(page_count, pages);
    // Each page ends with its footer; take them out to read paragraphs
    // that run across a page break.
    for i in 1..=pages {
        let footer = format!(" Research Report - page {i} of {pages}");
        assert!(read.contains(&footer), "no footer on page {i}");
        read = read.replacen(&footer, " ", 1);
    }
    let read = normalize(&read);
    assert!(read.contains("Research Report"));
    assert!(read.contains("Why durable execution?"));
    assert!(read.contains("Written by test-model"));
    for p in text.split("\n\n") {
        assert!(read.contains(&normalize(p)), "missing: {p}");
    }
}

#[tokio::test(start_paused = true)]
async fn file_names_cannot_escape_the_data_directory() {
    for bad in [
        "../evil.pdf",
        "/etc/passwd",
        "a/b.pdf",
        "..",
        ".hidden.pdf",
        "c:x.pdf",
        "",
    ] {
        assert!(
            files::safe_file_name(bad, "pdf").is_err(),
            "{bad:?} accepted"
        );
    }
    assert_eq!(
        files::safe_file_name("my report", "pdf").unwrap(),
        "my report.pdf"
    );
    assert_eq!(
        files::file_name_for_run("a/../b c", "019b-7000-000000000001", "eml"),
        "a_2F_2E_2E_2Fb_20c-1.eml"
    );
    // Two ids, two files (r/1 and r_1 shared one before); two runs, two files.
    let names = [
        files::file_name_for_run("r/1", "x-1", "pdf"),
        files::file_name_for_run("r_1", "x-1", "pdf"),
        files::file_name_for_run("r_1", "x-2", "pdf"),
    ];
    assert_eq!(names, ["r_2F1-1.pdf", "r_5F1-1.pdf", "r_5F1-2.pdf"]);
    let long = "é".repeat(400);
    assert!(files::file_name_for_run(&long, "x-1", "pdf").len() < 200);
    let (engine, _dir) = virtual_engine();
    let mut input = GenerateReportInput::new("x");
    input.file_name = Some("../../outside.pdf".into());
    research::register_type(&engine);
    let err = research::start_report(&engine, "escape", &input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidInput { detail, .. } if detail.contains("not a plain file name")),
        "{err}"
    );
    let mut input = GenerateReportInput::new("x");
    input.email_to = Some("not an address".into());
    let err = research::start_report(&engine, "bad-to", &input)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidInput { .. }), "{err}");
    let err = research::start_report(&engine, "empty", &GenerateReportInput::new("  "))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidInput { .. }), "{err}");
}

/// The model's server says when to come back (`retry-after`): the next
/// attempt waits that long, not the policy's 1 s; 408 and 409 are
/// transient; an answer cut off at the length limit is marked in the PDF,
/// not published as complete.
#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_a_cut_off_answer_is_marked() {
    let (engine, _dir) = virtual_engine();
    let server = LlmServer::start(
        vec![
            Reply::StatusWithHeader(429, "slow down".into(), "retry-after", "7".into()),
            Reply::Status(408, "request timeout".into()),
            Reply::StatusWithHeader(503, "busy".into(), "retry-after-ms", "2500".into()),
            Reply::Status(409, "conflict".into()),
            Reply::CutOff("Tides follow the moon, and".into()),
        ],
        Reply::Hang,
    )
    .await;
    let faults = Arc::new(Faults::new());
    let (_w, deps) = worker(&engine, http_llm(&server), &faults);
    let input = GenerateReportInput::new("Tides").without_approval();
    research::start_report(&engine, "tides", &input)
        .await
        .unwrap();
    let a = common::pending_activity(&engine, "tides", "llm_call", |a| a.attempt == 2).await;
    assert_eq!(
        a.current_retry_interval,
        Some(Duration::from_secs(7)),
        "the server's retry-after, not the policy's 1 s"
    );
    let a = common::pending_activity(&engine, "tides", "llm_call", |a| a.attempt == 4).await;
    assert_eq!(a.current_retry_interval, Some(Duration::from_millis(2500)));
    let out = completed(&engine, "tides").await;
    assert_eq!(server.requests().len(), 5, "408 and 409 were retried");
    let bytes = std::fs::read(deps.data_dir.join(&out.pdf)).unwrap();
    let (text, _) = pdf_text(&bytes);
    assert!(text.contains("cut off at its length limit"), "{text}");
}

/// A model that never answers in time ends the run with a clear failure
/// after a bounded number of attempts, instead of being paid forever; the
/// attempt's timeout follows LLM_TIMEOUT.
#[tokio::test(start_paused = true)]
async fn a_model_that_never_answers_fails_the_run_after_its_attempts() {
    let (engine, _dir) = virtual_engine();
    let server = LlmServer::start(vec![], Reply::Hang).await;
    let mut config = LlmConfig::new(&server.base_url, "test-model");
    config.timeout = Duration::from_secs(3);
    let llm = Llm::http(config).unwrap();
    let faults = Arc::new(Faults::new());
    let (_w, _deps) = worker(&engine, llm.clone(), &faults);
    let input = GenerateReportInput::new("Tides")
        .without_approval()
        .with_llm_timeout(llm.timeout());
    research::start_report(&engine, "hangs", &input)
        .await
        .unwrap();
    let WorkflowOutcome::Failed(f) = engine.result("hangs", None).await.unwrap() else {
        panic!("the run ends")
    };
    assert!(
        f.chain().to_string().contains("no answer within 3s"),
        "{}",
        f.chain()
    );
    assert_eq!(server.requests().len(), research::LLM_MAX_ATTEMPTS as usize);
}
