//! Who is calling, and may they: HTTP Basic credentials (account or API key) and Access Tokens,
//! verified through caches in front of argon2 and the database, the failure throttle, each
//! account's request rate, and which clock the account's requests run on. Routes see only the
//! extractors of `authenticator` (`Account`, `Caller`); nothing here knows a route.

pub mod access_token;
pub mod account_clocks;
pub mod argon2_pool;
pub mod authenticator;
pub mod console_sessions;
pub mod credentials;
pub mod failure_throttle;
pub mod master_key;
pub mod request_rate;
pub mod signing_keys;
