//! The small forms that start work: a transfer (from, to, amount) and a
//! report (the topic). Each field is a one-line editor (tui-input); what
//! is typed is checked before anything starts, and a mistake is said on
//! the form, which stays open.

use ratatui::crossterm::event::Event as TermEvent;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::apps::lab::Action;
use crate::apps::research;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    Transfer,
    Report,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub label: &'static str,
    pub input: Input,
}

#[derive(Clone, Debug)]
pub struct Form {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
    /// What was wrong with the last submit.
    pub error: Option<String>,
}

fn field(label: &'static str, value: &str) -> Field {
    Field {
        label,
        input: Input::new(value.to_string()),
    }
}

impl Form {
    /// The tutorial's transfer, ready to change.
    pub fn transfer() -> Form {
        Form {
            kind: FormKind::Transfer,
            fields: vec![
                field("from account", "85-150"),
                field("to account", "43-812"),
                field("amount ($)", "250"),
            ],
            focus: 2,
            error: None,
        }
    }

    pub fn report() -> Form {
        Form {
            kind: FormKind::Report,
            fields: vec![field(
                "topic",
                "Why does durable execution survive a crash?",
            )],
            focus: 0,
            error: None,
        }
    }

    pub fn title(&self) -> &'static str {
        match self.kind {
            FormKind::Transfer => "start a money transfer",
            FormKind::Report => "start a research report (you approve the draft)",
        }
    }

    /// A key typed into the focused field.
    pub fn type_key(&mut self, event: &TermEvent) {
        if let Some(f) = self.fields.get_mut(self.focus) {
            f.input.handle_event(event);
            self.error = None;
        }
    }

    pub fn next(&mut self) {
        self.focus = (self.focus + 1) % self.fields.len();
    }

    pub fn prev(&mut self) {
        self.focus = (self.focus + self.fields.len() - 1) % self.fields.len();
    }

    fn value(&self, i: usize) -> &str {
        self.fields[i].input.value().trim()
    }

    /// The action the form asks for, under a fresh `workflow_id`, or what is wrong.
    pub fn action(&self, workflow_id: String) -> Result<Action, String> {
        match self.kind {
            FormKind::Transfer => {
                let (from, to) = (self.value(0), self.value(1));
                if from.is_empty() || to.is_empty() {
                    return Err("name both accounts".into());
                }
                let amount: i64 = self.value(2).parse().map_err(|_| {
                    format!(
                        "amount {:?} is not a whole number of dollars",
                        self.value(2)
                    )
                })?;
                if amount <= 0 {
                    return Err(format!("amount must be more than $0, not ${amount}"));
                }
                Ok(Action::StartTransfer {
                    workflow_id: Some(workflow_id),
                    from: Some(from.to_string()),
                    to: Some(to.to_string()),
                    amount: Some(amount),
                    reference: None,
                    // The bug stays fixable while the run waits: retry until fixed.
                    max_attempts: Some(0),
                    delay_secs: None,
                })
            }
            FormKind::Report => {
                let topic = self.value(0);
                if topic.is_empty() {
                    return Err("say what to research".into());
                }
                if topic.len() > research::MAX_PROMPT_BYTES {
                    return Err(format!(
                        "the topic is {} bytes; at most {}",
                        topic.len(),
                        research::MAX_PROMPT_BYTES
                    ));
                }
                Ok(Action::StartReport {
                    workflow_id: Some(workflow_id),
                    prompt: topic.to_string(),
                    approval: true,
                    email_to: None,
                })
            }
        }
    }
}
