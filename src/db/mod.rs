//! PostgreSQL access: one file per aggregate, plain async functions over a pool or connection.
//! Routes and workers share them; none of them knows about HTTP.

pub mod accounts;
pub mod api_keys;
pub mod callback_claims;
pub mod callbacks;
pub mod composition_hooks;
pub mod composition_jobs;
pub mod compositions;
pub mod connect;
pub mod console_sessions;
pub mod embedded;
pub mod error;
pub mod find;
pub mod list;
pub mod media_commands;
pub mod media_events;
pub mod media_nodes;
pub mod media_settings;
pub mod migrate;
pub mod participant_deadlines;
pub mod participant_join;
pub mod participants;
pub mod recording_jobs;
pub mod recording_rules;
pub mod recordings;
pub mod request_context;
pub mod room_contents;
pub mod room_deadlines;
pub mod room_list;
pub mod rooms;
pub mod subscribe_rules;
pub mod test_clocks;
pub mod tracks;
pub mod worker_pool;

pub use connect::{lazy_pool, pool, transaction, wait_for, DbOptions};
pub use error::{DbError, OnConstraint};
pub use worker_pool::{PoolLimits, WorkerPool, WorkerPools};
