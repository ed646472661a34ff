//! roomd: a self-hosted, Twilio-compatible Programmable Video Rooms control plane on PostgreSQL.
//! `ARCHITECTURE.md` at the repository's root is the map: what each folder holds, what it must
//! not depend on, and the path of a request and of a background job through them.

pub mod app;
pub mod auth;
pub mod console;
pub mod db;
pub mod domain;
pub mod http;
pub mod media;
pub mod telemetry;
pub mod twilio;
pub mod workers;
