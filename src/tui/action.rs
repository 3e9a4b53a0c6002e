//! What a key (or a scenario step) asks the screen to do. Named in
//! snake_case, so a scenario file writes the same names the key table binds.

use serde::Deserialize;

use crate::apps::faults::Fault;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UiAction {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    Help,
    Quit,
    /// Enter: open what is selected.
    Open,
    /// Esc: close the overlay (or answer no).
    Back,
    Confirm,
    /// In a form: start what it describes.
    Submit,
    NextField,
    PrevField,
    Filter,
    CycleStatusFilter,
    ClearFilter,
    ToggleCompact,
    StartTransfer,
    StartReport,
    KillWorker,
    StopWorker,
    StartWorker,
    ToggleFault(Fault),
    HotSwapFix,
    RestartWorkerWithFix,
    CrashEngine,
    RetryNow,
    Approve,
    EditDraft,
    ShowDraft,
    Cancel,
    Terminate,
    Reset,
    SpeedUp,
    SpeedDown,
    /// After a scenario's summary: play it again from a fresh run.
    ReplayScenario,
}

impl UiAction {
    /// Every action, for the tests that hold the key table to it.
    pub fn all() -> Vec<UiAction> {
        use UiAction::*;
        let mut all = vec![
            Up,
            Down,
            PageUp,
            PageDown,
            Top,
            Bottom,
            NextPane,
            PrevPane,
            Help,
            Quit,
            Open,
            Back,
            Confirm,
            Filter,
            CycleStatusFilter,
            ClearFilter,
            ToggleCompact,
            StartTransfer,
            StartReport,
            KillWorker,
            StopWorker,
            StartWorker,
            HotSwapFix,
            RestartWorkerWithFix,
            CrashEngine,
            RetryNow,
            Approve,
            EditDraft,
            ShowDraft,
            Cancel,
            Terminate,
            Reset,
            SpeedUp,
            SpeedDown,
        ];
        all.extend(Fault::ALL.into_iter().map(ToggleFault));
        all
    }

    /// Asks "are you sure?" first: it throws work away.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            UiAction::Terminate | UiAction::CrashEngine | UiAction::Reset
        )
    }

    /// Acts on the selected run (nothing to do without one).
    pub fn needs_run(&self) -> bool {
        matches!(
            self,
            UiAction::RetryNow
                | UiAction::Approve
                | UiAction::EditDraft
                | UiAction::ShowDraft
                | UiAction::Cancel
                | UiAction::Terminate
                | UiAction::Reset
        )
    }
}
