//! Every fault a person or a scenario can switch on, in one place. Each is
//! read by a real code path that then really fails: the activity returns
//! its error (or, for a slow LLM, takes longer than its timeout) and the
//! engine does what it does with any failure.
//!
//! The deposit bug is different in kind: it is code, not weather. It is a
//! version of `deposit` a worker runs (see [`crate::apps::bank::DepositCode`]);
//! [`crate::apps::lab::Lab`] switches it by swapping code into the worker.
//!
//! The switches are "the code on disk": kept in the data directory, they
//! survive a restart of holdfast, `kill -9` included, as an edited
//! `activities.py` would.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// A switchable fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
    /// The transfer's workflow code was changed (it checks the balance
    /// before withdrawing): workers started now run it, and replaying a run
    /// begun with the old code is a nondeterminism error.
    WorkflowChanged,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::DepositBug,
        Fault::EmailOutage,
        Fault::LlmFailing,
        Fault::LlmSlow,
        Fault::PdfWriteError,
        Fault::WorkflowChanged,
    ];

    /// The name scenarios and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Fault::DepositBug => "deposit-bug",
            Fault::EmailOutage => "email-outage",
            Fault::LlmFailing => "llm-failing",
            Fault::LlmSlow => "llm-slow",
            Fault::PdfWriteError => "pdf-write-error",
            Fault::WorkflowChanged => "workflow-changed",
        }
    }

    /// One line saying what goes wrong while it is on.
    pub fn description(self) -> &'static str {
        match self {
            Fault::DepositBug => {
                "the worker runs the buggy deposit (deposit_that_fails): every deposit fails"
            }
            Fault::EmailOutage => "send_email fails: \"Email service temporarily unavailable\"",
            Fault::LlmFailing => "llm_call gets HTTP 503 from an overloaded model (retryable)",
            Fault::LlmSlow => "llm_call answers only after its start-to-close timeout",
            Fault::PdfWriteError => "create_pdf cannot write the report: the disk is full",
            Fault::WorkflowChanged => {
                "the transfer's workflow code changed (it checks the balance first): workers started now replay old runs into a nondeterminism error"
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The switches, shared by the activities and whoever flips them.
#[derive(Debug, Default)]
pub struct Faults {
    on: [AtomicBool; 6],
    /// Where the switches are kept, once the lab opened its data directory.
    disk: OnceLock<sled::Tree>,
}

impl Faults {
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Loads the switches kept in `tree` and keeps every later switch there.
    pub fn keep_in(&self, tree: sled::Tree) -> Result<(), sled::Error> {
        for f in Fault::ALL {
            if let Some(v) = tree.get(f.name())? {
                self.on[f.index()].store(v.first() == Some(&1), Ordering::SeqCst);
            }
        }
        let _ = self.disk.set(tree);
        Ok(())
    }

    pub fn is_on(&self, f: Fault) -> bool {
        self.on[f.index()].load(Ordering::SeqCst)
    }

    /// Sets a switch, on disk first when kept there; returns whether it was
    /// on before.
    pub fn set(&self, f: Fault, on: bool) -> Result<bool, sled::Error> {
        if let Some(tree) = self.disk.get() {
            tree.insert(f.name(), &[u8::from(on)])?;
            tree.flush()?;
        }
        Ok(self.on[f.index()].swap(on, Ordering::SeqCst))
    }
}
