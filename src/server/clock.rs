//! keyward's one clock: every time it records or compares — limits,
//! reservations and their expiry, ledger rows, audit entries, accounts,
//! conversations — comes from the `Clock` in `AppState` (or, at the command
//! line, a fresh one). Real time in production; tests move it forward to
//! cross a window edge or an expiry without waiting.

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        system_now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock forward (tests only have a reason to).
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// The system's time, never shifted: only for times another library takes
/// from the system too (the session store's expiry). Everything else asks
/// a `Clock`.
pub fn system_now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `YYYY-MM-DD` of the UTC day containing `ms`.
pub fn utc_day(ms: i64) -> String {
    super::db::format_day(ms)
}

/// Start of the next UTC day after `ms`.
pub fn next_utc_midnight(ms: i64) -> i64 {
    (ms.div_euclid(DAY_MS) + 1) * DAY_MS
}

/// Start (unix ms) of the UTC month containing `ms`.
pub fn month_start_ms(ms: i64) -> i64 {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return ms;
    };
    let first = at
        .replace_day(1)
        .map(time::OffsetDateTime::date)
        .unwrap_or(at.date());
    first.midnight().assume_utc().unix_timestamp() * 1000
}

/// "3 h 5 min", "42 s".
pub fn human_duration(ms: i64) -> String {
    let secs = (ms.max(0) + 999) / 1000;
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", (secs + 59) / 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_starts_on_its_first_day_at_midnight_utc() {
        // 2026-12-01T20:00:00Z and 2026-12-31T23:59:59Z → 2026-12-01T00:00:00Z.
        let first = 1_796_083_200_000;
        assert_eq!(month_start_ms(first + 20 * 3_600_000), first);
        assert_eq!(month_start_ms(first + 31 * DAY_MS - 1), first);
        assert_eq!(
            month_start_ms(first - 1),
            first - 30 * DAY_MS,
            "November has 30 days"
        );
    }

    #[test]
    fn midnight_and_durations() {
        let noon = 12 * 60 * 60 * 1000 + 20 * DAY_MS;
        assert_eq!(next_utc_midnight(noon), 21 * DAY_MS);
        assert_eq!(next_utc_midnight(21 * DAY_MS), 22 * DAY_MS);
        assert_eq!(human_duration(42_000), "42 s");
        assert_eq!(human_duration(61_000), "2 min");
        assert_eq!(human_duration(3 * 3600 * 1000 + 5 * 60 * 1000), "3 h 5 min");
    }
}
