//! Validated domain types: parsed once from the wire, trusted everywhere after.

pub mod account;
pub mod participant;
pub mod room;
pub mod sid;
