//! Runs a parsed command line: each command on the database it needs.

use crate::app::cli::{Cli, Command};
use crate::app::{account_commands, database, serve};
use anyhow::Result;

pub async fn run(cli: Cli) -> Result<()> {
    let settings = cli.settings;
    settings.check()?;
    match cli.command {
        Command::Serve => {
            database::with_database(&settings, |options| serve::serve(settings.clone(), options))
                .await
        }
        Command::Migrate => database::with_database(&settings, |_| async { Ok(()) }).await,
        Command::Healthcheck => serve::healthcheck(settings.bind),
        Command::JanusNode(args) => crate::app::janus_node::run(&settings, args).await,
        Command::Accounts(cmd) => {
            database::with_pool(&settings, async |pool| {
                account_commands::accounts(pool, &settings, cmd).await
            })
            .await
        }
        Command::Keys(cmd) => {
            database::with_pool(&settings, async |pool| {
                account_commands::keys(pool, &settings, cmd).await
            })
            .await
        }
    }
}
