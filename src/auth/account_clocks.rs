//! Test clocks: accounts whose time is their own (frozen, moved only by `POST /v1/TestClock`).
//!
//! Whether an account has one is fixed when it is created, so each process looks it up once per
//! account and remembers it. An authenticated request of a test-clock account then runs its
//! database work on the clock (`db::request_context::use_test_clock`); every other request runs
//! exactly as before.

use crate::db::WorkerPool;
use crate::domain::sid::AccountSid;
use crate::twilio::ApiError;
use actix_web::http::StatusCode;

/// The most accounts remembered (the least used go first).
const MAX_KNOWN: u64 = 100_000;

/// Which accounts run on a test clock, as far as this process has looked.
pub struct AccountClocks {
    /// `ROOMD_TEST_CLOCKS`: when false, test-clock accounts are refused (403).
    enabled: bool,
    /// Read on every request, written once per account.
    known: moka::sync::Cache<AccountSid, bool>,
}

impl AccountClocks {
    pub fn new(enabled: bool) -> AccountClocks {
        AccountClocks {
            enabled,
            known: moka::sync::Cache::new(MAX_KNOWN),
        }
    }

    /// Whether `account` runs on a test clock.
    pub async fn has_clock(
        &self,
        pool: &WorkerPool,
        account: &AccountSid,
    ) -> Result<bool, ApiError> {
        if let Some(known) = self.known.get(account) {
            return Ok(known);
        }
        let clocked = pool
            .run(async |c| crate::db::test_clocks::exists(c, account).await)
            .await?;
        self.known.insert(account.clone(), clocked);
        Ok(clocked)
    }

    /// For an authenticated request of `account`: puts its database work on the account's test
    /// clock if it has one (refused when test clocks are turned off).
    pub async fn enter(&self, pool: &WorkerPool, account: &AccountSid) -> Result<(), ApiError> {
        if !self.has_clock(pool, account).await? {
            return Ok(());
        }
        if !self.enabled {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                crate::twilio::error::code::FORBIDDEN,
                "This account runs on a test clock, and test clocks are turned off on this server",
            ));
        }
        crate::db::request_context::use_test_clock(Some(account));
        Ok(())
    }
}
