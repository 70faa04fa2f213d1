//! `count_tokens` on the platform key, held to the plan's per-minute rate.
//!
//! Counting tokens costs nothing at Anthropic, but it is rate-limited per
//! organisation: unlimited calls on the operator's key would use up what
//! the operator's own traffic needs. Each user may make as many
//! `count_tokens` calls per rolling minute as their plan allows model
//! calls, per instance (kept in memory: it is not money, so it does not
//! need the database's exactness across instances).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

const MINUTE_MS: i64 = 60_000;
/// Users whose window is looked after before empty ones are dropped.
const PRUNE_ABOVE_USERS: usize = 4_096;

#[derive(Default)]
pub struct CountWindow {
    calls: Mutex<HashMap<i64, VecDeque<i64>>>,
}

impl CountWindow {
    /// Takes one call for `user_id` at `now_ms` if fewer than `limit` were
    /// made in the last minute; else how many seconds until one is free.
    pub fn try_take(&self, user_id: i64, limit: i64, now_ms: i64) -> Result<(), u64> {
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if calls.len() > PRUNE_ABOVE_USERS {
            calls.retain(|_, times| times.back().is_some_and(|&at| at > now_ms - MINUTE_MS));
        }
        let times = calls.entry(user_id).or_default();
        while times.front().is_some_and(|&at| at <= now_ms - MINUTE_MS) {
            times.pop_front();
        }
        if times.len() as i64 >= limit.max(0) {
            let oldest = times.front().copied().unwrap_or(now_ms);
            let wait_ms = (oldest + MINUTE_MS - now_ms).max(1);
            return Err((wait_ms as u64).div_ceil(1000));
        }
        times.push_back(now_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_limit_per_rolling_minute_and_others_their_own() {
        let window = CountWindow::default();
        for second in 0..3 {
            assert_eq!(window.try_take(1, 3, second * 1000), Ok(()));
        }
        assert_eq!(
            window.try_take(1, 3, 10_000),
            Err(50),
            "free again when the first call is a minute old"
        );
        assert_eq!(
            window.try_take(2, 3, 10_000),
            Ok(()),
            "another user is not affected"
        );
        assert_eq!(window.try_take(1, 3, 60_001), Ok(()));
        assert!(
            window.try_take(1, 0, 70_000).is_err(),
            "a limit of 0 allows none"
        );
    }

    #[test]
    fn idle_users_are_forgotten() {
        let window = CountWindow::default();
        for user in 0..=PRUNE_ABOVE_USERS as i64 {
            window.try_take(user, 1, 0).unwrap();
        }
        window.try_take(-1, 1, MINUTE_MS + 1).unwrap();
        assert_eq!(window.calls.lock().unwrap().len(), 1);
    }
}
