//! Who a token belongs to and whose key their calls use, cached for under a
//! second so the gateway's hot path does no database reads.
//!
//! Every change that affects a cached answer (token revoked, user disabled,
//! key saved/removed/rejected, plan changed) calls `invalidate`, which takes
//! effect at once on this instance; other instances see it when their
//! entries expire, within `TTL`.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use crate::server::{
    db::users::UserRow,
    payer::{RouteError, RoutedKey},
};

const TTL: Duration = Duration::from_millis(900);
/// Past this many entries, expired ones are dropped on the next insert.
const PRUNE_ABOVE: usize = 4096;

/// A token's owner and the routing decision for their calls.
#[derive(Debug)]
pub struct Principal {
    pub token_id: i64,
    pub user: UserRow,
    pub route: Result<Arc<RoutedKey>, RouteError>,
}

struct Entry {
    epoch: u64,
    loaded_at: Instant,
    principal: Arc<Principal>,
}

#[derive(Default)]
pub struct PrincipalCache {
    epoch: AtomicU64,
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

impl PrincipalCache {
    /// The epoch to pass to `put` for an answer loaded from now on.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn get(&self, token_hash: &[u8; 32]) -> Option<Arc<Principal>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(token_hash)?;
        let fresh = entry.epoch == self.epoch() && entry.loaded_at.elapsed() < TTL;
        fresh.then(|| entry.principal.clone())
    }

    /// Stores an answer loaded at `epoch`; if anything was invalidated
    /// meanwhile, the entry is already stale and will be reloaded.
    pub fn put(&self, token_hash: [u8; 32], epoch: u64, principal: Arc<Principal>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= PRUNE_ABOVE {
            let current = self.epoch();
            entries.retain(|_, e| e.epoch == current && e.loaded_at.elapsed() < TTL);
        }
        entries.insert(
            token_hash,
            Entry {
                epoch,
                loaded_at: Instant::now(),
                principal,
            },
        );
    }

    /// Forgets every cached answer (cheap: entries carry the old epoch).
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::users::Role;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal {
            token_id: 1,
            user: UserRow {
                id: 7,
                email: "a@example.com".into(),
                password_hash: String::new(),
                role: Role::User,
                disabled: false,
                created_at: 0,
                fallback_to_free: false,
                own_key_caps: Default::default(),
            },
            route: Err(RouteError::NoPlatformKey),
        })
    }

    #[test]
    fn invalidation_drops_entries_at_once() {
        let cache = PrincipalCache::default();
        let epoch = cache.epoch();
        cache.put([1; 32], epoch, principal());
        assert!(cache.get(&[1; 32]).is_some());
        assert!(cache.get(&[2; 32]).is_none());
        cache.invalidate();
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn an_answer_loaded_before_an_invalidation_is_never_served() {
        let cache = PrincipalCache::default();
        let epoch = cache.epoch();
        cache.invalidate();
        cache.put([1; 32], epoch, principal());
        assert!(cache.get(&[1; 32]).is_none());
    }
}
