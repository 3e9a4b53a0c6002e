//! holdfast's integration tests, one binary (each test file was a binary
//! of its own, and each linked the whole crate). One module per topic; see
//! the README's table.

mod common;

mod bad_input;
mod bank;
mod bank_crash;
mod cancel_terminate;
mod cli_stories;
mod clock;
mod conformance;
mod crash;
mod feed;
mod heartbeats;
mod id_policies;
mod lab;
mod layering;
mod read_model;
mod replay;
mod replay_property;
mod research;
mod scenarios;
mod sticky;
mod timers_signals_queries;
mod tui;
mod tui_pty;
