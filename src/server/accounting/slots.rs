//! Places for calls in flight: each call holds one from its start until
//! its ledger row is committed, so a database that falls behind slows
//! callers down instead of letting the queue grow without bound.
//!
//! One user may hold at most `per_user` of them, so a single busy account
//! (or a stuck client) cannot take every place; and nobody waits for a
//! place longer than `wait`: past that the call is refused as overloaded,
//! which clients retry, instead of hanging.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A place for one call's ledger row, held from the call's start until its
/// row is committed.
#[derive(Debug)]
pub struct LedgerSlot {
    _all: OwnedSemaphorePermit,
    _user: OwnedSemaphorePermit,
}

/// No place came free in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotsBusy;

#[derive(Debug)]
pub struct SlotPool {
    all: Arc<Semaphore>,
    per_user: usize,
    users: Mutex<HashMap<i64, Arc<Semaphore>>>,
    wait: Duration,
}

/// Users' semaphores kept before idle ones are dropped.
const KEEP_USERS: usize = 4_096;

impl SlotPool {
    pub fn new(total: usize, per_user: usize, wait: Duration) -> Self {
        Self {
            all: Arc::new(Semaphore::new(total)),
            per_user,
            users: Mutex::default(),
            wait,
        }
    }

    /// A place for a call of `user_id`: first among the user's own, then
    /// among everyone's, within the pool's wait.
    pub async fn take(&self, user_id: i64) -> Result<LedgerSlot, SlotsBusy> {
        let user = self.user(user_id);
        let deadline = tokio::time::Instant::now() + self.wait;
        let user = tokio::time::timeout_at(deadline, user.acquire_owned())
            .await
            .map_err(|_| SlotsBusy)?
            .expect("slot semaphores are never closed");
        let all = tokio::time::timeout_at(deadline, self.all.clone().acquire_owned())
            .await
            .map_err(|_| SlotsBusy)?
            .expect("slot semaphores are never closed");
        Ok(LedgerSlot {
            _all: all,
            _user: user,
        })
    }

    fn user(&self, user_id: i64) -> Arc<Semaphore> {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if users.len() >= KEEP_USERS {
            // Only semaphores nobody holds or waits on go.
            let per_user = self.per_user;
            users.retain(|_, semaphore| {
                Arc::strong_count(semaphore) > 1 || semaphore.available_permits() < per_user
            });
        }
        users
            .entry(user_id)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_user)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_user_cannot_take_every_place_and_nobody_waits_for_ever() {
        let pool = SlotPool::new(3, 2, Duration::from_millis(50));
        let first = pool.take(1).await.unwrap();
        let _second = pool.take(1).await.unwrap();
        // User 1 has their share: their third call waits, then is refused.
        assert_eq!(pool.take(1).await.unwrap_err(), SlotsBusy);
        // Another user still gets the last place at once…
        let other = pool.take(2).await.unwrap();
        // …and then the pool is full for everyone, until a place frees.
        assert_eq!(pool.take(3).await.unwrap_err(), SlotsBusy);
        drop(first);
        assert!(pool.take(3).await.is_ok());
        drop(other);
    }

    #[tokio::test]
    async fn a_waiting_call_gets_a_place_that_frees_in_time() {
        let pool = Arc::new(SlotPool::new(1, 1, Duration::from_secs(10)));
        let held = pool.take(1).await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take(2).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiting.await.unwrap());
    }
}
