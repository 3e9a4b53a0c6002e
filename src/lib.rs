//! holdfast: a durable-execution engine you can watch fail and recover.

pub mod apps;
pub mod cli;
pub mod engine;
pub mod scenario;
pub mod text;
pub mod tui;
