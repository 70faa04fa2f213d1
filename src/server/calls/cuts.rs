//! Ending calls while they run: all of them when shutdown's grace is over,
//! or one user's when an admin disables the account (their streams stop
//! at once instead of running to the end on anyone's key).

use std::{collections::HashMap, sync::Mutex};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct CallCuts {
    all: CancellationToken,
    users: Mutex<HashMap<i64, CancellationToken>>,
}

impl CallCuts {
    /// What a call of `user_id` watches: cancelled when that user's calls
    /// or all calls are cut.
    pub fn for_user(&self, user_id: i64) -> CancellationToken {
        self.users()
            .entry(user_id)
            .or_insert_with(|| self.all.child_token())
            .clone()
    }

    /// Ends every call of `user_id` running now.
    pub fn cut_user(&self, user_id: i64) {
        if let Some(token) = self.users().remove(&user_id) {
            token.cancel();
        }
    }

    /// Ends every call (shutdown).
    pub fn cut_all(&self) {
        self.all.cancel();
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CancellationToken>> {
        self.users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_cut_ends_only_that_users_calls_and_shutdown_ends_all() {
        let cuts = CallCuts::default();
        let ada = cuts.for_user(1);
        let bob = cuts.for_user(2);
        cuts.cut_user(1);
        assert!(ada.is_cancelled());
        assert!(!bob.is_cancelled());
        assert!(!cuts.for_user(1).is_cancelled(), "her next calls run");
        cuts.cut_all();
        assert!(bob.is_cancelled());
        assert!(cuts.for_user(3).is_cancelled());
    }
}
