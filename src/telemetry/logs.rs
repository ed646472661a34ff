//! Logging to stderr (stdout stays clean for the CLI's JSON). `RUST_LOG` filters (default
//! `info`); `ROOMD_LOG_FORMAT` is `json` or `text`, by default text on a terminal and JSON
//! otherwise. Each line of a request carries its `request_id` (the `Twilio-Request-Id` header).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// `ROOMD_LOG_FORMAT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the subscriber (`None`: JSON unless stderr is a terminal).
pub fn init(format: Option<LogFormat>) {
    let json = match format {
        None => !std::io::stderr().is_terminal(),
        Some(format) => format == LogFormat::Json,
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
}
