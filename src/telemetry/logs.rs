//! Logging to stderr (stdout stays clean for the CLI's JSON). `RUST_LOG` filters (default
//! `info`); `ROOMD_LOG_FORMAT` is `json` or `text`, by default text on a terminal and JSON
//! otherwise. Each line of a request carries its `request_id` (the `Twilio-Request-Id` header).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init() -> Result<(), String> {
    let json = match std::env::var("ROOMD_LOG_FORMAT")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None | Some("") => !std::io::stderr().is_terminal(),
        Some("json") => true,
        Some("text") => false,
        Some(other) => {
            return Err(format!(
                "invalid ROOMD_LOG_FORMAT: {other:?} (expected json or text)"
            ))
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}
