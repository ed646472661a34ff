//! Background work on rows in PostgreSQL, safe with several roomd processes on one database:
//! the deadline sweeper and the status callback dispatcher.

pub mod callbacks;
pub mod sweeper;
