//! Every fault a person or a scenario can switch on, in one place. Each is
//! read by a real code path that then really fails: the activity returns
//! its error (or, for a slow LLM, takes longer than its timeout) and the
//! engine does what it does with any failure.
//!
//! The deposit bug is different in kind: it is code, not weather. It is a
//! version of `deposit` a worker runs (see [`crate::apps::bank::DepositCode`]);
//! [`crate::apps::lab::Lab`] switches it by swapping code into the worker.

use std::sync::atomic::{AtomicBool, Ordering};

/// A switchable fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The worker's `deposit` calls the tutorial's `deposit_that_fails`.
    DepositBug,
    /// `send_email` fails: "Email service temporarily unavailable".
    EmailOutage,
    /// `llm_call` fails as an overloaded endpoint does (HTTP 503, retryable).
    LlmFailing,
    /// `llm_call` answers only after its 30 s start-to-close timeout.
    LlmSlow,
    /// `create_pdf` cannot write the report (the disk is full).
    PdfWriteError,
}

impl Fault {
    /// The name scenarios and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Fault::DepositBug => "deposit-bug",
            Fault::EmailOutage => "email-outage",
            Fault::LlmFailing => "llm-failing",
            Fault::LlmSlow => "llm-slow",
            Fault::PdfWriteError => "pdf-write-error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The switches, shared by the activities and whoever flips them.
#[derive(Debug, Default)]
pub struct Faults {
    on: [AtomicBool; 5],
}

impl Faults {
    pub fn new() -> Faults {
        Faults::default()
    }

    pub fn is_on(&self, f: Fault) -> bool {
        self.on[f.index()].load(Ordering::SeqCst)
    }

    /// Sets a switch; returns whether it was on before.
    pub fn set(&self, f: Fault, on: bool) -> bool {
        self.on[f.index()].swap(on, Ordering::SeqCst)
    }
}
