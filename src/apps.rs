//! The two stories the Temporal tutorials teach with, on holdfast's engine
//! (through its public API only): the bank's money transfer and the AI
//! research report, and the faults a person or a scenario can switch on.

pub mod bank;
pub mod faults;
pub mod files;
pub mod lab;
pub mod research;
