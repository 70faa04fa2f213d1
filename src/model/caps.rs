//! Daily caps a user sets on their own Anthropic key, and how they are
//! typed: tokens as a whole number, money as dollars and cents.

use serde::{Deserialize, Serialize};

/// The largest cap accepted, in either unit: far above any real day's use,
/// and small enough that sums of reservations cannot overflow.
const MAX_TOKENS_CAP: i64 = 1_000_000_000_000;
const MAX_USD_CAP: i64 = 1_000_000;

/// Caps on the user's own key; `None` means no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnKeyCaps {
    pub tokens_per_day: Option<i64>,
    pub micro_usd_per_day: Option<i64>,
}

impl OwnKeyCaps {
    pub fn is_set(&self) -> bool {
        self.tokens_per_day.is_some() || self.micro_usd_per_day.is_some()
    }
}

/// The settings page's caps section: the caps and today's use of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnKeyCapsStatus {
    pub caps: OwnKeyCaps,
    pub has_own_key: bool,
    /// Tokens used (or held by calls in flight) on the user's key today.
    pub tokens_today: i64,
    pub micro_usd_today: i64,
    /// "5 h 12 min"
    pub resets_in: String,
}

/// Reads a token cap: blank means no cap; digits with optional `,`, `_` or
/// space separators otherwise.
pub fn parse_token_cap(input: &str) -> Result<Option<i64>, String> {
    let digits: String = input
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '_' | ' '))
        .collect();
    if digits.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        format!("The token cap must be a whole number of tokens, such as 200000 (you typed \"{}\"). Leave it empty for no cap.", input.trim())
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let tokens: i64 = digits.parse().map_err(|_| invalid())?;
    if tokens == 0 || tokens > MAX_TOKENS_CAP {
        return Err(format!(
            "The token cap must be between 1 and {MAX_TOKENS_CAP} tokens. Leave it empty for no cap."
        ));
    }
    Ok(Some(tokens))
}

/// Reads a spending cap in US dollars (`5`, `5.50`, `$0.25`) into micro-USD;
/// blank means no cap.
pub fn parse_usd_cap(input: &str) -> Result<Option<i64>, String> {
    let text = input.trim();
    let text = text
        .strip_prefix('$')
        .unwrap_or(text)
        .trim()
        .replace(',', "");
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        format!("The spending cap must be an amount in US dollars, such as 5 or 2.50 (you typed \"{}\"). Leave it empty for no cap.", input.trim())
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
        || fraction.len() > 6
    {
        return Err(invalid());
    }
    let dollars: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    if dollars > MAX_USD_CAP {
        return Err(format!(
            "The spending cap can be at most ${MAX_USD_CAP} a day. Leave it empty for no cap."
        ));
    }
    let micro_fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| invalid())?;
    let micro = dollars * 1_000_000 + micro_fraction;
    if micro == 0 {
        return Err("The spending cap must be more than $0. Leave it empty for no cap.".into());
    }
    Ok(Some(micro))
}

/// `$5`, `$2.50`, `$0.0125`: dollars with as many decimals as needed (2 to 6).
pub fn format_usd_amount(micro: i64) -> String {
    let dollars = micro / 1_000_000;
    let fraction = format!("{:06}", micro % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    match fraction.len() {
        0 => format!("${dollars}"),
        1 | 2 => format!("${dollars}.{fraction:0<2}"),
        _ => format!("${dollars}.{fraction}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_caps_accept_separators_and_blank() {
        assert_eq!(parse_token_cap(""), Ok(None));
        assert_eq!(parse_token_cap("  "), Ok(None));
        assert_eq!(parse_token_cap("200000"), Ok(Some(200_000)));
        assert_eq!(parse_token_cap("1,000,000"), Ok(Some(1_000_000)));
        assert_eq!(parse_token_cap("50 000"), Ok(Some(50_000)));
        assert!(parse_token_cap("0").is_err());
        assert!(parse_token_cap("-5").is_err());
        assert!(parse_token_cap("1.5").is_err());
        assert!(parse_token_cap("lots").unwrap_err().contains("\"lots\""));
        assert!(parse_token_cap("99999999999999999999999").is_err());
    }

    #[test]
    fn usd_caps_are_exact_in_micro_usd() {
        assert_eq!(parse_usd_cap(""), Ok(None));
        assert_eq!(parse_usd_cap("5"), Ok(Some(5_000_000)));
        assert_eq!(parse_usd_cap("$2.50"), Ok(Some(2_500_000)));
        assert_eq!(parse_usd_cap("0.1"), Ok(Some(100_000)));
        assert_eq!(parse_usd_cap(".25"), Ok(Some(250_000)));
        assert_eq!(parse_usd_cap("1,000"), Ok(Some(1_000_000_000)));
        assert_eq!(parse_usd_cap("0.000001"), Ok(Some(1)));
        assert!(parse_usd_cap("0").is_err());
        assert!(parse_usd_cap("0.0000001").is_err());
        assert!(parse_usd_cap("-1").is_err());
        assert!(parse_usd_cap("1.2.3").is_err());
        assert!(parse_usd_cap(".").is_err());
        assert!(parse_usd_cap("five").is_err());
        assert!(parse_usd_cap("2000000").is_err());
    }

    #[test]
    fn amounts_print_with_the_decimals_they_need() {
        assert_eq!(format_usd_amount(5_000_000), "$5");
        assert_eq!(format_usd_amount(2_500_000), "$2.50");
        assert_eq!(format_usd_amount(12_500), "$0.0125");
        assert_eq!(format_usd_amount(1), "$0.000001");
        for micro in [1, 10, 2_500_000, 123_456_789] {
            let text = format_usd_amount(micro);
            assert_eq!(parse_usd_cap(&text), Ok(Some(micro)), "{text}");
        }
    }
}
