//! `roomd accounts ...` and `roomd keys ...`, and the bootstrap account of `roomd serve`.

use crate::app::cli::{AccountsCommand, KeysCommand, OutputFormat, QuotaSetting, RateSetting};
use crate::app::config::Settings;
use crate::app::database::master_key;
use crate::auth::master_key::MasterKey;
use crate::db;
use crate::domain::account::NewAccount;
use crate::domain::sid::{self, AccountSid, ApiKeySid};
use anyhow::{bail, Context, Result};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

fn parse_account(raw: &str) -> Result<AccountSid> {
    AccountSid::parse(raw).with_context(|| {
        format!("not an account SID: {raw:?} (expected AC followed by 32 hex digits)")
    })
}

pub async fn keys(pool: &PgPool, settings: &Settings, cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Create {
            account,
            friendly_name,
            format,
        } => {
            let account = parse_account(&account)?;
            let key = master_key(pool, settings).await?;
            let sid = ApiKeySid::generate();
            let (secret, hash) = new_token().await?;
            let sealed = key.seal(&sid, secret.expose_secret().as_bytes());
            let Some(created) =
                db::api_keys::create(pool, &sid, &account, &friendly_name, &hash, &sealed).await?
            else {
                bail!("no account {account}");
            };
            match format {
                OutputFormat::Json => {
                    let mut out = serde_json::to_value(&created)?;
                    out["secret"] = secret.expose_secret().into();
                    println!("{out}");
                }
                // SIDs and secrets are hex: nothing in them needs shell quoting.
                OutputFormat::Env => println!(
                    "export TWILIO_API_KEY={}\nexport TWILIO_API_SECRET={}",
                    created.sid,
                    secret.expose_secret()
                ),
            }
        }
        KeysCommand::List { account } => {
            let account = parse_account(&account)?;
            println!(
                "{}",
                serde_json::to_string(&db::api_keys::list(pool, &account).await?)?
            );
        }
        KeysCommand::Delete { sid } => {
            let Some(sid) = ApiKeySid::parse(&sid) else {
                bail!("not an API key SID: {sid:?} (expected SK followed by 32 hex digits)");
            };
            if !db::api_keys::delete(pool, &sid).await? {
                bail!("no key {sid}");
            }
            println!("{}", serde_json::json!({ "sid": sid, "deleted": true }));
        }
    }
    Ok(())
}

pub async fn accounts(pool: &PgPool, settings: &Settings, cmd: AccountsCommand) -> Result<()> {
    match cmd {
        AccountsCommand::Create {
            friendly_name,
            format,
            test_clock,
        } => {
            if test_clock && !settings.test_clocks {
                bail!("test clocks are turned off here (ROOMD_TEST_CLOCKS=false)");
            }
            let key = master_key(pool, settings).await?;
            let (token, hash) = new_token().await?;
            let sid = AccountSid::generate();
            let sealed = key.seal(&sid, token.expose_secret().as_bytes());
            let account =
                db::accounts::create(pool, &sid, &friendly_name, &hash, Some(&sealed), test_clock)
                    .await?;
            let out = NewAccount {
                sid: account.sid,
                friendly_name: account.friendly_name,
                status: account.status,
                date_created: account.date_created,
                test_clock: account.test_clock,
                auth_token: token,
            };
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string(&out)?),
                // SIDs and tokens are hex: nothing in them needs shell quoting.
                OutputFormat::Env => println!(
                    "export TWILIO_ACCOUNT_SID={}\nexport TWILIO_AUTH_TOKEN={}",
                    out.sid,
                    out.auth_token.expose_secret()
                ),
            }
        }
        AccountsCommand::List => {
            println!(
                "{}",
                serde_json::to_string(&db::accounts::list(pool).await?)?
            );
        }
        AccountsCommand::Update {
            sid: account_sid,
            max_requests_per_second,
            client_room_creation,
            max_rooms_in_progress,
            max_participants_connected,
        } => {
            let account_sid = parse_account(&account_sid)?;
            let update = db::accounts::AccountUpdate {
                max_requests_per_second: max_requests_per_second.map(|r| match r {
                    RateSetting::Default => None,
                    RateSetting::PerSecond(n) => Some(n),
                }),
                client_room_creation,
                max_rooms_in_progress: max_rooms_in_progress.map(QuotaSetting::stored),
                max_participants_connected: max_participants_connected.map(QuotaSetting::stored),
            };
            let Some(account) = db::accounts::update(pool, &account_sid, &update).await? else {
                bail!("no account {account_sid}");
            };
            println!("{}", serde_json::to_string(&account)?);
        }
        AccountsCommand::RotateToken { sid: account_sid } => {
            let account_sid = parse_account(&account_sid)?;
            let key = master_key(pool, settings).await?;
            let (token, hash) = new_token().await?;
            let sealed = key.seal(&account_sid, token.expose_secret().as_bytes());
            if !db::accounts::set_token_hash(pool, &account_sid, &hash, Some(&sealed)).await? {
                bail!("no account {account_sid}");
            }
            println!(
                "{}",
                serde_json::json!({ "sid": account_sid, "auth_token": token.expose_secret() })
            );
        }
    }
    Ok(())
}

/// A fresh auth token and its argon2 hash (hashed off the async executor).
async fn new_token() -> Result<(SecretString, SecretString)> {
    let token = SecretString::from(sid::random_hex32());
    let hash = tokio::task::spawn_blocking({
        let token = token.clone();
        move || crate::auth::credentials::hash_token(token.expose_secret())
    })
    .await?;
    Ok((token, hash))
}

/// Makes sure `ROOMD_BOOTSTRAP_ACCOUNT` exists with its token; leaves it untouched when the
/// token already verifies, so restarts are no-ops.
pub async fn bootstrap(pool: &PgPool, settings: &Settings, key: &MasterKey) -> Result<()> {
    let Some(b) = &settings.bootstrap_account else {
        return Ok(());
    };
    let sealed = key.seal(&b.sid, b.token.expose_secret().as_bytes());
    if let Some(hash) = db::accounts::token_hash(pool, &b.sid).await? {
        let token = b.token.clone();
        if tokio::task::spawn_blocking(move || {
            crate::auth::credentials::verify_token(token.expose_secret(), hash.expose_secret())
        })
        .await?
        {
            db::accounts::seal_token_if_missing(pool, &b.sid, &sealed).await?;
            tracing::info!(account_sid = %b.sid, "bootstrap account present");
            return Ok(());
        }
    }
    let token = b.token.clone();
    let hash = tokio::task::spawn_blocking(move || {
        crate::auth::credentials::hash_token(token.expose_secret())
    })
    .await?;
    let created = db::accounts::upsert(pool, &b.sid, "bootstrap", &hash, Some(&sealed)).await?;
    tracing::info!(account_sid = %b.sid, created, "bootstrap account ready");
    Ok(())
}
