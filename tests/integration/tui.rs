//! The terminal UI on ratatui's `TestBackend`: each pane in the states that
//! matter, drawn from a real lab on the virtual clock and snapshotted with
//! insta (ids, pids and paths filtered); keys driven through the real event
//! loop with an injected input stream, acting on the real engine.

use std::time::Duration;

use crate::common;
use holdfast::apps::bank::{self, PaymentDetails};
use holdfast::apps::faults::Fault;
use holdfast::apps::lab::Lab;
use holdfast::apps::research::Llm;
use holdfast::engine::{Clock, EngineConfig, PendingActivityState, WorkflowExecutionStatus};
use holdfast::tui::app::{App, Event, Overlay};
use holdfast::tui::log::LogBuffer;
use holdfast::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};

fn lab() -> (Lab, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(dir.path().join("data")).clock(Clock::virtual_time());
    (Lab::open(config, Llm::Offline).unwrap(), dir)
}

fn key(c: char) -> Event {
    Event::Term(TermEvent::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )))
}

/// The screen as text, with what changes from run to run filtered out.
fn screen(app: &App, width: u16, height: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
    t.draw(|f| holdfast::tui::view::draw(f, app, Theme::plain()))
        .unwrap();
    t.backend().to_string()
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({filters => vec![
            (r"/tmp/\.tmp[A-Za-z0-9]+/data", "[data-dir]"),
            // Worker identities hold the test's pid, whose length varies.
            (r"\b\d{2,7}@[a-z-]*\d*", "[worker]"),
            (r"sticky=[^│\x22]*", "sticky=[queue]"),
            // ...and so the padding after them.
            (r" +│", " │"),
            (r"\b[WDR]-[0-9a-f][0-9a-f-]*", "[txn]"),
        ]}, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

/// An App holding what the screen would read now.
async fn loaded(lab: &Lab, selected: &str) -> App {
    let mut app = App::new(lab.snapshot(), lab.engine().now_ms());
    let loaded = holdfast::tui::load(
        lab.engine(),
        lab.bank(),
        &app.status_filter.to_filter(""),
        app.list_limit,
        Some(selected.to_string()),
        None,
    )
    .await
    .unwrap();
    app.handle(Event::Loaded {
        request: app.request,
        loaded: Box::new(loaded),
    });
    app
}

/// The first story mid-retry: the deposit waits for attempt 5 with a
/// countdown and a gauge; the timeline shows four failures with the
/// backoff growing to the policy's 2 s cap; the run is marked retrying;
/// the money withdrawn is in flight and the bank still adds up.
#[tokio::test(start_paused = true)]
async fn deposit_retrying_shows_the_countdown_and_the_attempts() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::DepositBug, true).unwrap();
    lab.start_workers();
    let details = PaymentDetails::tutorial().with_maximum_attempts(0);
    bank::start_transfer(lab.engine(), "pay-invoice-701", &details)
        .await
        .unwrap();
    let a = common::pending_activity(lab.engine(), "pay-invoice-701", "deposit", |a| {
        a.attempt == 5 && a.state == PendingActivityState::Scheduled
    })
    .await;
    let mut app = loaded(&lab, "pay-invoice-701").await;
    // 0.8 s into the 2 s wait.
    let next = a.next_attempt_schedule_time_ms.unwrap();
    app.handle(Event::Tick {
        now_ms: next - 1_200,
    });
    // Wide enough that no line is cut where the worker's pid is.
    let text = screen(&app, 140, 32);
    assert!(text.contains("attempt 5 of ∞"), "{text}");
    assert!(text.contains("next attempt in 2s of 2s"), "{text}");
    assert!(text.contains("● Running ↻"), "{text}");
    assert!(text.contains("withdrawn ✓ · deposited ✗"), "{text}");
    assert!(
        text.contains("bank: money conserved ✓ · $250 in flight"),
        "{text}"
    );
    snapshot!("deposit_retrying", text);
}

/// The tutorial's refund: three attempts, the money goes back, the
/// workflow fails; the balances prove it.
#[tokio::test(start_paused = true)]
async fn failed_transfer_shows_the_refund() {
    let (mut lab, _dir) = lab();
    lab.set_fault(Fault::DepositBug, true).unwrap();
    lab.start_workers();
    bank::start_transfer(lab.engine(), "pay-invoice-701", &PaymentDetails::tutorial())
        .await
        .unwrap();
    lab.engine().result("pay-invoice-701", None).await.unwrap();
    let mut app = loaded(&lab, "pay-invoice-701").await;
    app.handle(Event::Term(TermEvent::Key(KeyEvent::new(
        KeyCode::Tab,
        KeyModifiers::NONE,
    ))));
    assert_eq!(app.focus, holdfast::tui::app::Pane::History);
    let text = screen(&app, 110, 32);
    assert!(text.contains("✗ Failed"), "{text}");
    assert!(text.contains("85-150: $2000   43-812: $0"), "{text}");
    assert!(
        text.contains("withdrawn ✓ · deposited ✗ · refunded ✓"),
        "{text}"
    );
    assert!(
        text.contains("bank: money conserved ✓ · all $18575 in accounts"),
        "{text}"
    );
    snapshot!("transfer_failed_refunded", text);
}

/// `?` lists every key from the one table; Esc closes it.
#[tokio::test(start_paused = true)]
async fn help_lists_every_key() {
    let (lab, _dir) = lab();
    let mut app = App::new(lab.snapshot(), lab.engine().now_ms());
    app.handle(key('?'));
    assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    let text = screen(&app, 120, 80);
    for b in &app.keymap {
        assert!(
            text.contains(b.description),
            "help lacks {:?}",
            b.description
        );
    }
    snapshot!("help", screen(&app, 100, 30));
    app.handle(Event::Term(TermEvent::Key(KeyEvent::new(
        KeyCode::Esc,
        KeyModifiers::NONE,
    ))));
    assert!(app.overlay.is_none());
}

/// A terminal smaller than the layout says what it needs.
#[tokio::test(start_paused = true)]
async fn too_small_a_terminal_says_so() {
    let (lab, _dir) = lab();
    let app = App::new(lab.snapshot(), lab.engine().now_ms());
    let text = screen(&app, 60, 20);
    assert!(text.contains("make the window larger (needs 80×24, it is 60×20)"));
    snapshot!("too_small", text);
}

/// Destructive actions ask first: T on a run opens a question; n leaves
/// it; y sends the terminate to the lab. Crashing the engine shows
/// "recovering" in the top bar until the lab answers.
#[tokio::test(start_paused = true)]
async fn destructive_keys_ask_first() {
    let (mut lab, _dir) = lab();
    lab.start_workers();
    bank::start_transfer(lab.engine(), "pay-invoice-701", &PaymentDetails::tutorial())
        .await
        .unwrap();
    lab.engine().result("pay-invoice-701", None).await.unwrap();
    let mut app = loaded(&lab, "pay-invoice-701").await;
    assert!(app.handle(key('T')).is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Confirm { .. })));
    assert!(screen(&app, 100, 30).contains("Terminate pay-invoice-701?"));
    assert!(app.handle(key('n')).is_empty());
    assert!(app.overlay.is_none());
    app.handle(key('T'));
    let effects = app.handle(key('y'));
    assert!(
        matches!(&effects[..], [holdfast::tui::app::Effect::Lab(holdfast::apps::lab::Action::Terminate { workflow_id, .. })] if workflow_id == "pay-invoice-701"),
        "{effects:?}"
    );
    // Reset goes to the last workflow task, as Temporal's LastWorkflowTask.
    app.handle(key('Z'));
    let effects = app.handle(key('y'));
    let last_task = app
        .run
        .as_ref()
        .unwrap()
        .history
        .iter()
        .rev()
        .find(|e| e.event_type() == holdfast::engine::EventType::WorkflowTaskCompleted)
        .map(|e| e.event_id);
    assert!(last_task.is_some());
    assert!(
        matches!(&effects[..], [holdfast::tui::app::Effect::Lab(holdfast::apps::lab::Action::Reset { event_id, .. })] if *event_id == last_task),
        "{effects:?}"
    );
    app.handle(key('X'));
    app.handle(key('y'));
    assert!(screen(&app, 100, 30).contains("engine recovering"));
}

/// The real loop, keys from an injected stream: t starts a transfer on
/// the engine, b switches the bug on first (the top bar says so), q quits.
#[tokio::test(start_paused = true)]
async fn keys_drive_the_lab_through_the_real_loop() {
    let (lab, _dir) = lab();
    let engine = lab.engine().clone();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<TermEvent>>();
    let input = tokio_stream_of(rx);
    let ui = tokio::spawn(async move {
        let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
        let out =
            holdfast::tui::run(&mut t, input, lab, Theme::plain(), LogBuffer::new(50), None).await;
        (t, out)
    });
    let press = |c: char| {
        tx.send(Ok(TermEvent::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        ))))
        .unwrap()
    };
    let mut feed = engine.subscribe();
    press('b');
    tokio::time::sleep(Duration::from_millis(10)).await;
    press('t');
    tx.send(Ok(TermEvent::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    ))))
    .unwrap();
    let d = loop {
        let change = feed.recv().await.unwrap();
        if let Some(r) = change
            .runs
            .into_iter()
            .find(|r| r.description.info.workflow_type == bank::WORKFLOW_TYPE)
        {
            break r.description;
        }
    };
    assert_eq!(d.info.status, WorkflowExecutionStatus::Running);
    common::pending_activity(&engine, &d.info.workflow_id, "deposit", |a| a.attempt >= 2).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    press('q');
    let (t, out) = ui.await.unwrap();
    out.unwrap();
    let text = t.backend().to_string();
    assert!(text.contains("deposit: buggy"), "{text}");
    assert!(text.contains(&d.info.workflow_id[..12]), "{text}");
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Unpin {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// t opens a small form with the tutorial's transfer filled in; a bad
/// amount is said on the form, which stays open; Enter starts what it
/// says; Esc leaves without starting anything.
#[tokio::test(start_paused = true)]
async fn the_transfer_form_checks_what_is_typed() {
    use holdfast::apps::lab::Action;
    use holdfast::tui::app::Effect;
    let (lab, _dir) = lab();
    let mut app = App::new(lab.snapshot(), lab.engine().now_ms());
    let special =
        |code: KeyCode| Event::Term(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    app.handle(key('t'));
    assert!(matches!(app.overlay, Some(Overlay::Form(_))));
    let text = screen(&app, 100, 30);
    assert!(text.contains("85-150") && text.contains("250"), "{text}");
    // The amount field has the focus: make it "25x".
    app.handle(special(KeyCode::Backspace));
    app.handle(key('x'));
    assert!(app.handle(special(KeyCode::Enter)).is_empty());
    assert!(screen(&app, 100, 30).contains("amount \"25x\" is not a whole number of dollars"));
    app.handle(special(KeyCode::Backspace));
    app.handle(key('0'));
    let effects = app.handle(special(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::Lab(Action::StartTransfer { amount: Some(250), from: Some(f), .. })] if f == "85-150"),
        "{effects:?}"
    );
    assert!(app.overlay.is_none());
    app.handle(key('p'));
    app.handle(special(KeyCode::Esc));
    assert!(app.overlay.is_none());
    snapshot!("help_forms", {
        app.handle(key('?'));
        screen(&app, 120, 80)
    });
}

/// A report waiting for a person's decision: the LLM was paid once, no PDF
/// yet, and the app pane says which keys answer it; d shows the draft (a
/// query answered by the worker), a approves from there.
#[tokio::test(start_paused = true)]
async fn report_waiting_for_approval_says_what_to_press() {
    use holdfast::apps::research::{self, GenerateReportInput};
    let (mut lab, _dir) = lab();
    lab.start_workers();
    research::start_report(
        lab.engine(),
        "report-1",
        &GenerateReportInput::new("Lighthouses"),
    )
    .await
    .unwrap();
    // The draft is ready once the model answered and nothing else is pending.
    lab.engine()
        .wait_until("report-1", |d| {
            d.pending_activities.is_empty()
                && d.pending_workflow_task.is_none()
                && d.info.history_length > 8
        })
        .await
        .unwrap();
    let mut app = loaded(&lab, "report-1").await;
    let text = screen(&app, 110, 32);
    assert!(text.contains("LLM calls paid: 1"), "{text}");
    assert!(text.contains("PDF: not yet"), "{text}");
    assert!(
        text.contains("waiting for you: d draft · a approve · E edit"),
        "{text}"
    );
    snapshot!("report_waiting", text);
    let effects = app.handle(key('d'));
    assert!(
        matches!(&effects[..], [holdfast::tui::app::Effect::ShowDraft { workflow_id }] if workflow_id == "report-1"),
        "{effects:?}"
    );
    app.handle(Event::Text {
        title: "draft of report-1".into(),
        body: "Lighthouses\n\x1b[31mkeep ships off rocks\x1b[0m".into(),
    });
    let text = screen(&app, 110, 32);
    assert!(text.contains("keep ships off rocks"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape sequences are stripped");
    let effects = app.handle(key('a'));
    assert!(
        matches!(&effects[..], [holdfast::tui::app::Effect::Lab(holdfast::apps::lab::Action::Signal { name, .. })] if name == research::SIGNAL),
        "{effects:?}"
    );
    assert!(app.overlay.is_none(), "answering closes the draft");
}

/// Guided: the scenario's step asks for a key; pressing it applies the
/// step's own action (its own workflow id, unlimited attempts); the checks
/// are observed until they hold; the next step's key; at the end, what
/// happened from the engine's records, and nothing lost.
#[tokio::test(start_paused = true)]
async fn a_scenario_guides_the_person_through_the_keys() {
    let (lab, _dir) = lab();
    let engine = lab.engine().clone();
    let s = holdfast::scenario::Scenario::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/03-deposit-bug-restart.toml"),
    )
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<TermEvent>>();
    let ui = tokio::spawn(async move {
        let mut t = Terminal::new(TestBackend::new(120, 48)).unwrap();
        let out = holdfast::tui::run(
            &mut t,
            tokio_stream_of(rx),
            lab,
            Theme::plain(),
            LogBuffer::new(50),
            Some(s),
        )
        .await;
        (t, out)
    });
    let press = |c: char| {
        tx.send(Ok(TermEvent::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        ))))
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    press('t');
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The step's own transfer, with the bug (the scenario's fault) retrying.
    common::pending_activity(&engine, "pay-invoice-703", "deposit", |a| a.attempt >= 4).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    press('R');
    let out = engine.result("pay-invoice-703", None).await.unwrap();
    assert!(
        matches!(out, holdfast::engine::WorkflowOutcome::Completed(_)),
        "{out:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Ctrl-C quits from anywhere (q would close the summary first).
    tx.send(Ok(TermEvent::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    ))))
    .unwrap();
    let (t, out) = ui.await.unwrap();
    out.unwrap();
    let text = t.backend().to_string();
    assert!(text.contains("what happened"), "{text}");
    assert!(text.contains("lost: nothing"), "{text}");
    assert!(text.contains("Every step held."), "{text}");
    assert!(text.contains("✓ done"), "{text}");
}

/// The guide pane: the step's words, its key from the key table, and its
/// checks ticked as they are observed.
#[tokio::test(start_paused = true)]
async fn the_guide_pane_shows_the_step_its_key_and_its_checks() {
    use holdfast::tui::app::{Guide, GuideCheck};
    let (lab, _dir) = lab();
    let mut app = App::new(lab.snapshot(), lab.engine().now_ms());
    app.handle(Event::Guide(Box::new(Guide {
        title: "Fix the bug by restarting the worker".into(),
        progress: "step 2 of 2".into(),
        text: "Stop the worker, fix the code, start it again.".into(),
        action: Some(holdfast::tui::action::UiAction::RestartWorkerWithFix),
        hint: false,
        note: None,
        checks: vec![],
        done: false,
    })));
    let text = screen(&app, 110, 32);
    assert!(text.contains("press R"), "{text}");
    app.handle(Event::Guide(Box::new(Guide {
        title: "Fix the bug by restarting the worker".into(),
        progress: "step 2 of 2".into(),
        text: "The next attempt runs the fixed deposit.".into(),
        action: None,
        hint: false,
        note: Some("the worker is already dead: the story goes on".into()),
        checks: vec![
            GuideCheck {
                name: "status".into(),
                holds: false,
                seen: "Running".into(),
            },
            GuideCheck {
                name: "ran".into(),
                holds: true,
                seen: "ran 1 time(s)".into(),
            },
        ],
        done: false,
    })));
    let text = screen(&app, 110, 32);
    assert!(text.contains("… status: Running"), "{text}");
    assert!(text.contains("✓ ran: ran 1 time(s)"), "{text}");
    assert!(
        text.contains("(the worker is already dead: the story goes on)"),
        "{text}"
    );
    snapshot!("guide", text);
}

/// `holdfast` opens on a picker: free play first, then each scenario with
/// its line, ✓ on the ones done; ↓ Enter picks one.
#[tokio::test(start_paused = true)]
async fn the_picker_lists_the_scenarios_and_remembers_the_done_ones() {
    use holdfast::tui::picker::{self, Choice};
    let dir = tempfile::tempdir().unwrap();
    picker::mark_done(dir.path(), "01-first-transfer");
    let keys = [KeyCode::Down, KeyCode::Enter]
        .map(|k| Ok(TermEvent::Key(KeyEvent::new(k, KeyModifiers::NONE))));
    let mut input = futures::stream::iter(keys);
    let mut t = Terminal::new(TestBackend::new(110, 40)).unwrap();
    let choice = picker::pick(&mut t, &mut input, dir.path(), Theme::plain())
        .await
        .unwrap();
    let Choice::Scenario(path) = choice else {
        panic!("{choice:?}")
    };
    assert!(path.ends_with("01-first-transfer.toml"), "{path:?}");
    let text = t.backend().to_string();
    assert!(text.contains("Free play"), "{text}");
    assert!(text.contains("✓ First transfer"), "{text}");
    assert!(!text.contains("✓ The server crashes"), "{text}");
    snapshot!("picker", text);
}
