//! roomd: a self-hosted, Twilio-compatible Programmable Video Rooms control plane on PostgreSQL.
//! See `design.md` in the project's shared folder for the architecture.

pub mod access_token;
pub mod auth;
pub mod callbacks;
pub mod caller;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod routes;
pub mod seal;
pub mod signature;
pub mod startup;
pub mod state;
pub mod sweeper;
pub mod telemetry;
pub mod throttle;
pub mod twilio;
pub mod unread_body;
pub mod verifier;
