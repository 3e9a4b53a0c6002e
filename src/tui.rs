//! The terminal UI: watch a workflow fail, break it with a key, fix it,
//! watch it recover.
//!
//! One loop: events in (keys from an injected stream, engine changes from
//! the feed, results of work done in the background, one timer for the next
//! countdown second), drained, then one draw if anything changed. A key
//! never waits on the engine: lab actions run in their own task, reads in
//! theirs, and both report back as events. The real terminal's
//! `EventStream` is built only by [`run_in_terminal`]; tests hand
//! [`run`] any stream and a `TestBackend`.

pub mod action;
pub mod app;
pub mod guided;
pub mod keymap;
pub mod log;
pub mod picker;
mod terminal;
pub mod theme;
pub mod view;

pub use terminal::run_in_terminal;

use std::collections::HashSet;
use std::time::Duration;

use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::Event as TermEvent;
use tokio::sync::mpsc;

use crate::apps::bank::{self, Bank, Movement, PaymentDetails, SEED_ACCOUNTS};
use crate::apps::lab::Lab;
use crate::apps::research;
use crate::engine::{Engine, EventAttributes, HistoryEvent, ListFilter, Payload};
use app::{App, Effect, Event, RunView};
use theme::Theme;

/// How the screen ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The person asked to play the scenario again.
    pub replay: bool,
    /// A guided scenario held to its last step.
    pub scenario_done: bool,
}

impl Outcome {
    fn of(app: &App, replay: bool) -> Outcome {
        Outcome {
            replay,
            scenario_done: app.guide.as_ref().is_some_and(|g| g.done),
        }
    }
}

/// Runs the screen until the person quits. `input` is the terminal's
/// events (crossterm's `EventStream` in the real terminal).
pub async fn run<B, S>(
    terminal: &mut Terminal<B>,
    mut input: S,
    lab: Lab,
    theme: Theme,
    logs: log::LogBuffer,
    scenario: Option<crate::scenario::Scenario>,
) -> Result<Outcome, String>
where
    B: Backend,
    S: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let engine = lab.engine().clone();
    let bank = lab.bank().clone();
    let mut app = App::new(lab.snapshot(), engine.now_ms());
    app.logs = logs;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let lab_tx = guided::spawn_lab(lab, scenario, tx.clone());
    spawn_feed(&engine, tx.clone());
    let mut loading = false;
    let mut load_again = true;
    let mut dirty = true;
    loop {
        if load_again && !loading {
            load_again = false;
            loading = true;
            app.request += 1;
            spawn_load(&engine, &bank, &app, tx.clone());
        }
        if dirty {
            terminal
                .draw(|f| view::draw(f, &app, theme))
                .map_err(|e| format!("cannot draw: {e}"))?;
            dirty = false;
        }
        let tick = next_tick(&app, &engine);
        let first = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => return Ok(Outcome::of(&app, false)),
            },
            input = input.next() => match input {
                Some(Ok(ev)) => Event::Term(ev),
                Some(Err(e)) => return Err(format!("cannot read the terminal: {e}")),
                None => return Ok(Outcome::of(&app, false)),
            },
            _ = sleep_opt(&engine, tick) => Event::Tick { now_ms: engine.now_ms() },
        };
        // Everything queued, then one draw.
        let mut events = vec![first];
        while let Ok(ev) = rx.try_recv() {
            events.push(ev);
        }
        for ev in events {
            if matches!(ev, Event::Loaded { .. }) {
                loading = false;
            }
            dirty = true;
            for effect in app.handle(ev) {
                match effect {
                    Effect::Reload => load_again = true,
                    Effect::Lab(action) => {
                        let _ = lab_tx.send(action);
                    }
                    Effect::ShowDraft { workflow_id } => {
                        spawn_query(&engine, workflow_id, tx.clone())
                    }
                    Effect::Quit => return Ok(Outcome::of(&app, false)),
                    Effect::Replay => return Ok(Outcome::of(&app, true)),
                }
            }
        }
        app.now_ms = engine.now_ms();
    }
}

/// Engine changes become one kind of event; the screen re-reads what it shows.
fn spawn_feed(engine: &Engine, tx: mpsc::UnboundedSender<Event>) {
    let mut feed = engine.subscribe();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        while let Ok(_) | Err(RecvError::Lagged(_)) = feed.recv().await {
            if tx.send(Event::Changed).is_err() {
                break;
            }
        }
    });
}

fn spawn_load(engine: &Engine, bank: &Bank, app: &App, tx: mpsc::UnboundedSender<Event>) {
    let engine = engine.clone();
    let bank = bank.clone();
    let filter = app.status_filter.to_filter(&app.text_filter);
    let selected = app.selected_id.clone();
    let have = app.run.as_ref().map(|r| {
        (
            r.description.info.run_id.clone(),
            r.history.last().map_or(0, |e| e.event_id),
        )
    });
    let request = app.request;
    let limit = app.list_limit;
    tokio::spawn(async move {
        let event = match load(&engine, &bank, &filter, limit, selected, have).await {
            Ok(loaded) => Event::Loaded {
                request,
                loaded: Box::new(loaded),
            },
            Err(e) => Event::Error(e),
        };
        let _ = tx.send(event);
    });
}

/// What one reload reads.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The newest runs that match the filters, at most the list's limit.
    pub runs: Vec<crate::engine::WorkflowExecutionInfo>,
    /// More match than were read.
    pub more: bool,
    /// Run ids with an activity retrying.
    pub retrying: HashSet<String>,
    pub run: Option<RunView>,
}

/// Reads what the screen shows: the first page of runs, newest first; the
/// selected run (or the newest). `have` names the run the screen holds and
/// its last event: then only the events after it are read
/// ([`RunView::first_event_id`] says where they start).
pub async fn load(
    engine: &Engine,
    bank: &Bank,
    filter: &ListFilter,
    limit: usize,
    selected: Option<String>,
    have: Option<(String, u64)>,
) -> Result<Loaded, String> {
    let page = engine
        .list(filter, limit, None)
        .await
        .map_err(|e| e.to_string())?;
    let retrying_filter = ListFilter {
        retrying: true,
        ..ListFilter::default()
    };
    let retrying = engine
        .list(&retrying_filter, app::PAGE, None)
        .await
        .map_err(|e| e.to_string())?
        .executions
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    let selected = selected.or_else(|| page.executions.first().map(|r| r.workflow_id.clone()));
    let run = match selected {
        Some(id) => {
            let description = engine
                .describe(&id, None)
                .await
                .map_err(|e| e.to_string())?;
            let run_id = description.info.run_id.clone();
            let after = match &have {
                Some((r, last)) if *r == run_id => *last,
                _ => 0,
            };
            let history = engine
                .history_after(&id, Some(&run_id), after, usize::MAX)
                .await
                .map_err(|e| e.to_string())?;
            let facts = if description.info.workflow_type == bank::WORKFLOW_TYPE {
                // The transfer's input is its first event: read it again only
                // when this reload brought the new events alone.
                let first = match history.first() {
                    Some(e) if e.event_id == 1 => Some(e.clone()),
                    _ => engine
                        .history_after(&id, Some(&run_id), 0, 1)
                        .await
                        .ok()
                        .and_then(|h| h.into_iter().next()),
                };
                first.map_or_else(Vec::new, |e| transfer_facts(bank, &e))
            } else {
                Vec::new()
            };
            Some(RunView {
                description,
                history,
                first_event_id: after + 1,
                facts,
            })
        }
        None => None,
    };
    Ok(Loaded {
        more: page.next_page_token.is_some(),
        runs: page.executions,
        retrying,
        run,
    })
}

/// The app's own state for a transfer, from its first event: the accounts
/// it moves money between, what it moved, and the whole bank's total with
/// what is in flight.
fn transfer_facts(bank: &Bank, started: &HistoryEvent) -> Vec<String> {
    let EventAttributes::WorkflowExecutionStarted { input, .. } = &started.attributes else {
        return Vec::new();
    };
    let Ok(p) = input.to_value::<PaymentDetails>() else {
        return Vec::new();
    };
    let balance = |n: &str| {
        bank.account(n)
            .map(|a| format!("${}", a.balance))
            .unwrap_or_else(|_| "unknown account".into())
    };
    let total: i64 = bank
        .accounts()
        .map(|a| a.iter().map(|a| a.balance).sum())
        .unwrap_or(0);
    let seeded: i64 = SEED_ACCOUNTS.iter().map(|(_, b)| b).sum();
    let in_flight = bank.in_flight().unwrap_or(0);
    let moved = |m: Movement| bank.entry(&p.reference_id, m).ok().flatten().is_some();
    let mark = |yes: bool| if yes { "✓" } else { "✗" };
    vec![
        format!("${} {} → {}", p.amount, p.source_account, p.target_account),
        format!(
            "withdrawn {} · deposited {}{}",
            mark(moved(Movement::Withdrawal)),
            mark(moved(Movement::Deposit)),
            if moved(Movement::Refund) {
                " · refunded ✓"
            } else {
                ""
            }
        ),
        format!(
            "{}: {}   {}: {}",
            p.source_account,
            balance(&p.source_account),
            p.target_account,
            balance(&p.target_account)
        ),
        match (total + in_flight == seeded, in_flight) {
            (true, 0) => format!("bank: money conserved ✓ · all ${seeded} in accounts"),
            (true, f) => format!("bank: money conserved ✓ · ${f} in flight"),
            (false, _) => format!(
                "bank: money NOT conserved ✗ accounts ${total} + in flight ${in_flight} ≠ ${seeded}"
            ),
        },
    ]
}

fn spawn_query(engine: &Engine, workflow_id: String, tx: mpsc::UnboundedSender<Event>) {
    let engine = engine.clone();
    tokio::spawn(async move {
        let args = Payload::from_value(&()).unwrap_or_default();
        let event = match engine
            .query(&workflow_id, None, research::QUERY_RESULT, args)
            .await
        {
            Ok(p) => Event::Text {
                title: format!("draft of {workflow_id}"),
                body: p
                    .to_value::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "no draft yet".into()),
            },
            Err(e) => Event::Error(format!("query {workflow_id}: {e}")),
        };
        let _ = tx.send(event);
    });
}

/// When the next second falls, if anything on screen counts (a countdown,
/// the age of a running run); nothing ticks when nothing runs.
fn next_tick(app: &App, engine: &Engine) -> Option<Duration> {
    let now = engine.now_ms();
    let running = app
        .runs
        .iter()
        .any(|r| r.status == crate::engine::WorkflowExecutionStatus::Running);
    running.then(|| Duration::from_millis(1000 - now % 1000))
}

async fn sleep_opt(engine: &Engine, d: Option<Duration>) {
    match d {
        Some(d) => engine.clock().sleep(d).await,
        None => std::future::pending().await,
    }
}
