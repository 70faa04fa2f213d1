//! Which days a dashboard covers: today, the last 7 or 30 days (today
//! included), or a custom range of whole UTC days.

use crate::{
    error::AppError,
    model::admin::PeriodQuery,
    server::{clock::DAY_MS, db::dashboard::DayRange, db::format_day},
};

/// Longest custom range, so one request cannot ask for the whole history.
const MAX_DAYS: i64 = 366;

/// Midnight UTC (ms) of a `YYYY-MM-DD` day.
pub fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

fn range(from_ms: i64, to_ms: i64) -> DayRange {
    DayRange {
        from_day: format_day(from_ms),
        to_day: format_day(to_ms),
        from_ms,
        until_ms: to_ms + DAY_MS,
    }
}

/// The range a query asks for, at `now_ms`. Default: the last 7 days.
pub fn resolve(query: &PeriodQuery, now_ms: i64) -> Result<DayRange, AppError> {
    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    let custom = |text: &Option<String>| {
        text.as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                parse_day(t).ok_or_else(|| {
                    AppError::Validation(format!("\"{t}\" is not a date; use YYYY-MM-DD."))
                })
            })
            .transpose()
    };
    let (from, to) = (custom(&query.from)?, custom(&query.to)?);
    if from.is_some() || to.is_some() {
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to - 6 * DAY_MS);
        if from > to {
            return Err(AppError::Validation(
                "The start date is after the end date.".into(),
            ));
        }
        if (to - from) / DAY_MS + 1 > MAX_DAYS {
            return Err(AppError::Validation(format!(
                "Pick at most {MAX_DAYS} days."
            )));
        }
        return Ok(range(from, to));
    }
    let days = match query.days {
        Some(days @ (1 | 7 | 30 | 90)) => i64::from(days),
        _ => 7,
    };
    Ok(range(today - (days - 1) * DAY_MS, today))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON_2026_11_23: i64 = 1_795_435_200_000;

    #[test]
    fn default_is_the_last_seven_days_including_today() {
        let r = resolve(&PeriodQuery::default(), NOON_2026_11_23).unwrap();
        assert_eq!(
            (r.from_day.as_str(), r.to_day.as_str()),
            ("2026-11-17", "2026-11-23")
        );
        assert_eq!(r.until_ms - r.from_ms, 7 * DAY_MS);
        let today = resolve(
            &PeriodQuery {
                days: Some(1),
                ..Default::default()
            },
            NOON_2026_11_23,
        )
        .unwrap();
        assert_eq!(today.from_day, "2026-11-23");
    }

    #[test]
    fn custom_ranges_are_checked() {
        let q = |from: &str, to: &str| PeriodQuery {
            days: None,
            from: Some(from.into()),
            to: Some(to.into()),
        };
        let r = resolve(&q("2026-01-01", "2026-01-31"), NOON_2026_11_23).unwrap();
        assert_eq!(r.to_day, "2026-01-31");
        assert!(resolve(&q("2026-02-01", "2026-01-01"), NOON_2026_11_23).is_err());
        assert!(resolve(&q("2026-13-01", "2026-01-01"), NOON_2026_11_23).is_err());
        assert!(resolve(&q("2020-01-01", "2026-01-01"), NOON_2026_11_23).is_err());
    }
}
