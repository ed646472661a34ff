//! One integration-test binary: every test runs the real server on a real port against its own
//! real PostgreSQL database, and speaks HTTP to it.

mod access_tokens;
mod auth;
mod callbacks;
mod cli;
mod compositions;
mod console;
mod errors;
mod fuzz_params;
mod hardening;
mod helpers;
mod limits;
mod media;
mod observability;
mod participants;
mod receiver;
mod recordings;
mod replicas;
mod resilience;
mod rooms_create;
mod rooms_fetch;
mod rooms_list;
mod rooms_update;
mod rules;
mod sweeper;
mod test_clock;
mod tls;
mod tracks;
mod worker_pool;
