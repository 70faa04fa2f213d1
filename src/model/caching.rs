//! How chat turns on a plan use Anthropic's prompt cache.

use serde::{Deserialize, Serialize};

/// The cache lifetime a plan's chat turns ask for. Writes cost 1.25× the
/// input price for five minutes, 2× for an hour; reads cost 0.1×. An hour
/// pays off where people come back to a conversation after more than five
/// minutes (one read saves what the dearer write cost); off is for
/// comparing what caching saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PromptCaching {
    #[serde(rename = "off")]
    Off,
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

impl PromptCaching {
    pub const ALL: [PromptCaching; 3] = [
        PromptCaching::FiveMinutes,
        PromptCaching::OneHour,
        PromptCaching::Off,
    ];

    /// As stored in the database, sent by the admin form and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptCaching::Off => "off",
            PromptCaching::FiveMinutes => "5m",
            PromptCaching::OneHour => "1h",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            PromptCaching::Off => "Off",
            PromptCaching::FiveMinutes => "5 minutes (writes 1.25× input)",
            PromptCaching::OneHour => "1 hour (writes 2× input)",
        }
    }

    /// The `anthropic-beta` an hour-long cache was introduced under; sent
    /// with it (harmless where the feature no longer needs it).
    pub fn beta(self) -> Option<&'static str> {
        (self == PromptCaching::OneHour).then_some("extended-cache-ttl-2025-04-11")
    }

    /// The `cache_control` a breakpoint carries; `None` when off.
    pub fn cache_control(self) -> Option<serde_json::Value> {
        match self {
            PromptCaching::Off => None,
            PromptCaching::FiveMinutes => Some(serde_json::json!({ "type": "ephemeral" })),
            PromptCaching::OneHour => Some(serde_json::json!({ "type": "ephemeral", "ttl": "1h" })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_round_trips_through_its_name() {
        for caching in PromptCaching::ALL {
            assert_eq!(PromptCaching::parse(caching.as_str()), Some(caching));
        }
        assert_eq!(PromptCaching::parse("2h"), None);
    }

    #[test]
    fn only_an_hour_names_its_ttl() {
        assert_eq!(PromptCaching::Off.cache_control(), None);
        assert_eq!(
            PromptCaching::FiveMinutes.cache_control().unwrap(),
            serde_json::json!({ "type": "ephemeral" })
        );
        assert_eq!(PromptCaching::OneHour.cache_control().unwrap()["ttl"], "1h");
    }
}
