//! The deliveries one dispatcher has in flight, per account and per destination host, so that no
//! account or receiver holds more than its share of the process's slots.

use super::settings::CallbackSettings;
use crate::db::callback_claims::{self as outbox, Claimed};

use std::collections::HashMap;

/// The deliveries this process has in flight, per account and per destination host.
#[derive(Default)]
pub(super) struct Slots {
    accounts: HashMap<String, i64>,
    hosts: HashMap<String, i64>,
}

impl Slots {
    pub(super) fn take(&mut self, event: &Claimed) {
        *self.accounts.entry(event.account_sid.clone()).or_default() += 1;
        *self.hosts.entry(event.host.clone()).or_default() += 1;
    }

    pub(super) fn give_back(&mut self, event: &Claimed) {
        for (map, key) in [
            (&mut self.accounts, &event.account_sid),
            (&mut self.hosts, &event.host),
        ] {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n <= 0 {
                    map.remove(key);
                }
            }
        }
    }

    pub(super) fn limits(&self, free: usize, settings: &CallbackSettings) -> outbox::ClaimLimits {
        let busy = |m: &HashMap<String, i64>| m.iter().map(|(k, n)| (k.clone(), *n)).collect();
        outbox::ClaimLimits {
            free: free as i64,
            per_account: settings.per_account as i64,
            per_host: settings.per_host as i64,
            busy_accounts: busy(&self.accounts),
            busy_hosts: busy(&self.hosts),
        }
    }
}
