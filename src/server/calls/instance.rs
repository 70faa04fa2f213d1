//! This process's name on the reservations it takes, and the upkeep that
//! keeps them honest: renewing its own while calls run, releasing what a
//! crashed process left.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::server::{
    clock::Clock,
    db::{self, reservations::Tag, Db},
};

/// How long a reservation stands without renewal: three renewals, so a
/// live call's reservation is never released under it unless the database
/// was out of reach for that long.
pub const RESERVATION_TTL: Duration = Duration::from_secs(3 * 60);
/// How often a live instance renews its reservations and sweeps expired ones.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Instance {
    name: String,
    /// Whether the operator named this instance (`KEYWARD_INSTANCE_ID`):
    /// only then does a start release what the name left behind.
    named: bool,
    /// Reservations of calls running here now, with how many calls share
    /// each (a lease's row serves several): the only ones renewed, so one
    /// whose call died without settling (a panic) still expires.
    live: Mutex<HashMap<i64, usize>>,
    /// Reservations expire, and are swept, by this clock.
    clock: Arc<Clock>,
}

impl Instance {
    /// `configured` (`KEYWARD_INSTANCE_ID`, which the operator keeps
    /// unique among live instances), else a name of this process's own:
    /// host, address and a random part, since neither host names (fixed in
    /// some container setups) nor addresses are unique across machines.
    pub fn new(configured: Option<&str>, addr: std::net::SocketAddr, clock: Arc<Clock>) -> Self {
        let configured = configured.map(str::trim).filter(|name| !name.is_empty());
        let name = match configured {
            Some(name) => name.to_owned(),
            None => format!("{}:{}:{:08x}", host_name(), addr, rand::random::<u32>()),
        };
        Self {
            name,
            named: configured.is_some(),
            live: Mutex::default(),
            clock,
        }
    }

    pub fn track(&self, reservation_id: i64) {
        *self.live_ids().entry(reservation_id).or_default() += 1;
    }

    pub fn untrack(&self, reservation_id: i64) {
        let mut live = self.live_ids();
        if let Some(calls) = live.get_mut(&reservation_id) {
            *calls -= 1;
            if *calls == 0 {
                live.remove(&reservation_id);
            }
        }
    }

    fn live_ids(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        // Plain ids: a panic elsewhere cannot leave the set inconsistent.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag for a reservation taken now.
    pub fn tag(&self) -> Tag<'_> {
        Tag {
            instance: &self.name,
            expires_at: self.expiry_from_now(),
        }
    }

    /// At start: releases what an earlier process under this operator-given
    /// name left (it died mid-call), and whatever else has expired.
    pub async fn release_left_behind(&self, db: &Db) {
        let predecessor = self.named.then_some(self.name.as_str());
        match db::give_back::release_abandoned(db, self.clock.now_ms(), predecessor).await {
            Ok(0) => {}
            Ok(released) => tracing::warn!(
                released,
                "released reservations left by a process that did not finish its calls"
            ),
            Err(err) => tracing::error!(error = %err, "could not release abandoned reservations"),
        }
    }

    /// Every `UPKEEP_INTERVAL`: renews this instance's reservations and
    /// releases expired ones (another instance that died).
    pub fn spawn_upkeep(self: Arc<Self>, db: Db) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let live: Vec<i64> = self.live_ids().keys().copied().collect();
                let renewed_until = self.expiry_from_now();
                if let Err(err) = db::reservations::renew(&db, &live, renewed_until).await {
                    tracing::warn!(error = %err, "could not renew reservations");
                }
                match db::give_back::release_abandoned(&db, self.clock.now_ms(), None).await {
                    Ok(0) => {}
                    Ok(released) => {
                        tracing::warn!(released, "released expired reservations")
                    }
                    Err(err) => tracing::warn!(error = %err, "could not sweep reservations"),
                }
                let a_day_ago = self.clock.now_ms() - crate::server::clock::DAY_MS;
                if let Err(err) = db::reservations::forget_releases_before(&db, a_day_ago).await {
                    tracing::warn!(error = %err, "could not prune the noted releases");
                }
            }
        });
    }
}

impl Instance {
    fn expiry_from_now(&self) -> i64 {
        self.clock.now_ms() + RESERVATION_TTL.as_millis() as i64
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
