//! The command line: `serve`, `migrate`, `accounts`, `keys`, `healthcheck`, each with every
//! setting (`app::config`) from the environment or a flag.

use crate::app::config::Settings;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "roomd",
    version,
    about = "Self-hosted, Twilio-compatible Video Rooms API on PostgreSQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply migrations, then serve the HTTP API and run the sweeper until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage accounts (tenants).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage API keys (`SK...`): Basic auth with `SK...:secret` acts as the key's account.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Exit 0 when the roomd at ROOMD_BIND answers /healthz with 200 (for container healthchecks).
    Healthcheck,
    /// Run Janus as an external media node of roomd (the compose file's `janus` service): its
    /// configuration written from these options and ROOMD_JANUS_ADMIN_SECRET /
    /// ROOMD_JANUS_ROOM_ADMIN_KEY, restarted if it dies, until SIGTERM/SIGINT. List it in roomd's
    /// ROOMD_JANUS_NODES under the same name.
    JanusNode(crate::app::janus_node::JanusNodeArgs),
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; prints it as JSON with its secret (shown only this once).
    Create {
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "")]
        friendly_name: String,
        /// `json` (one object), or `env`: `export TWILIO_API_KEY=...` and
        /// `export TWILIO_API_SECRET=...` lines, for `eval` in a shell.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
    },
    /// List an account's keys as JSON (no secrets).
    List {
        #[arg(long)]
        account: String,
    },
    /// Delete a key; it stops working on every replica within the credential-cache TTL.
    Delete { sid: String },
}

/// How `accounts create` and `keys create` print what they made.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Env,
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Create an account; prints it as JSON with its auth token (shown only this once).
    Create {
        #[arg(long)]
        friendly_name: String,
        /// `json` (one object), or `env`: `export TWILIO_ACCOUNT_SID=...` and
        /// `export TWILIO_AUTH_TOKEN=...` lines, for `eval` in a shell.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
        /// Give the account a test clock: its time stands still at its creation and moves only
        /// when `POST /v1/TestClock` advances it (for test suites; refused when
        /// `ROOMD_TEST_CLOCKS=false`).
        #[arg(long)]
        test_clock: bool,
    },
    /// List accounts as JSON (no secrets).
    List,
    /// Give an account a new auth token and print it; the old one stops working on every replica
    /// within the credential-cache TTL.
    RotateToken { sid: String },
    /// Change an account's limits; prints the account. Replicas apply a change within the
    /// credential-cache TTL.
    Update {
        sid: String,
        /// Requests per second the account may make of each roomd process (1..1000000), or
        /// `default` for `ROOMD_ACCOUNT_REQUESTS_PER_SECOND`.
        #[arg(long, value_parser = parse_rate)]
        max_requests_per_second: Option<RateSetting>,
        /// Whether a join naming a room that does not exist creates it (Twilio's client-side
        /// room creation).
        #[arg(long)]
        client_room_creation: Option<bool>,
        /// Rooms in progress the account may have at once (0: unlimited), or `default` for
        /// `ROOMD_ACCOUNT_MAX_ROOMS_IN_PROGRESS`.
        #[arg(long, value_parser = parse_quota)]
        max_rooms_in_progress: Option<QuotaSetting>,
        /// Participants connected the account may have at once (0: unlimited), or `default` for
        /// `ROOMD_ACCOUNT_MAX_PARTICIPANTS_CONNECTED`.
        #[arg(long, value_parser = parse_quota)]
        max_participants_connected: Option<QuotaSetting>,
    },
}

/// `--max-requests-per-second`: a number, or back to the default.
#[derive(Debug, Clone, Copy)]
pub enum RateSetting {
    Default,
    PerSecond(i32),
}

/// `--max-rooms-in-progress`, `--max-participants-connected`: a number (0: unlimited), or back
/// to the default.
#[derive(Debug, Clone, Copy)]
pub enum QuotaSetting {
    Default,
    Limit(i32),
}

impl QuotaSetting {
    pub fn stored(self) -> Option<i32> {
        match self {
            QuotaSetting::Default => None,
            QuotaSetting::Limit(n) => Some(n),
        }
    }
}

fn parse_quota(value: &str) -> std::result::Result<QuotaSetting, String> {
    match value {
        "default" => Ok(QuotaSetting::Default),
        v => match v.parse::<i32>() {
            Ok(n) if n >= 0 => Ok(QuotaSetting::Limit(n)),
            _ => Err(format!(
                "{v:?} is not a number from 0 (unlimited), or default"
            )),
        },
    }
}

fn parse_rate(value: &str) -> std::result::Result<RateSetting, String> {
    match value {
        "default" => Ok(RateSetting::Default),
        v => match v.parse::<i32>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(RateSetting::PerSecond(n)),
            _ => Err(format!("{v:?} is not a number in 1..=1000000, or default")),
        },
    }
}

/// The command line and the environment, parsed; a bad setting is one line that names its
/// variable (clap's own message would span several and, for some settings, echo a secret).
pub fn parse() -> Cli {
    // An empty variable is an unset one (compose files and shells leave such behind).
    for (name, value) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if (name_str.starts_with("ROOMD_") || name_str == "DATABASE_URL")
            && value.to_string_lossy().trim().is_empty()
        {
            std::env::remove_var(&name);
        }
    }
    Cli::try_parse().unwrap_or_else(|e| match setting_error(&e) {
        Some(line) => {
            eprintln!("roomd: {line}");
            std::process::exit(2)
        }
        None => e.exit(),
    })
}

/// `invalid NAME: "value": why` for a setting's bad value (the value left out when it may hold
/// a secret); `None` for any other command-line error.
fn setting_error(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(flag)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = flag.split_whitespace().next()?.trim_start_matches("--");
    let command = Cli::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let name = arg.get_env()?.to_string_lossy().into_owned();
    let why = std::error::Error::source(e).map_or_else(|| e.kind().to_string(), |s| s.to_string());
    match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) if !arg.is_hide_env_values_set() => {
            Some(format!("invalid {name}: {value:?} is {why}"))
        }
        _ => Some(format!("invalid {name}: {why}")),
    }
}
