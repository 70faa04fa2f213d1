//! The Claude models keyward knows, with list prices (USD per million tokens,
//! which is the same number as micro-USD per token). What a call costs on top
//! of these (cache, long context, tool fees) is in `prices`.

pub use super::prices::cost_micro_usd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: &'static str,
    pub label: &'static str,
    pub input_usd_per_mtok: u64,
    pub output_usd_per_mtok: u64,
    /// The most output tokens a call can ask for (Anthropic answers a
    /// larger `max_tokens` with a 400); for a family, its largest.
    pub max_output_tokens: i64,
    /// The shortest prompt prefix Anthropic caches; for a family, its
    /// largest (a breakpoint below it caches nothing).
    pub min_cacheable_tokens: i64,
}

/// Price families: any `claude-opus-4*`, `claude-sonnet-4*`, `claude-haiku-4*`
/// id is priced like its family (Anthropic's list prices, checked on
/// `prices::PRICES_CHECKED`).
pub const MODELS: [ModelInfo; 3] = [
    ModelInfo {
        id: "claude-haiku-4-5",
        label: "Claude Haiku 4.5",
        input_usd_per_mtok: 1,
        output_usd_per_mtok: 5,
        max_output_tokens: 64_000,
        min_cacheable_tokens: 4_096,
    },
    ModelInfo {
        id: "claude-sonnet-4-6",
        label: "Claude Sonnet 4.6",
        input_usd_per_mtok: 3,
        output_usd_per_mtok: 15,
        max_output_tokens: 128_000,
        min_cacheable_tokens: 2_048,
    },
    ModelInfo {
        id: "claude-opus-4-7",
        label: "Claude Opus 4.7",
        input_usd_per_mtok: 5,
        output_usd_per_mtok: 25,
        max_output_tokens: 128_000,
        min_cacheable_tokens: 4_096,
    },
];

/// Claude Opus 4 and 4.1 kept the Opus 3 list price; from Opus 4.5 on,
/// Opus costs a third of it. Not offered in plans, but priced when a user's
/// own key calls them.
const OPUS_4_AND_4_1: ModelInfo = ModelInfo {
    id: "claude-opus-4-1",
    label: "Claude Opus 4.1",
    input_usd_per_mtok: 15,
    output_usd_per_mtok: 75,
    max_output_tokens: 32_000,
    min_cacheable_tokens: 1_024,
};

pub fn find(id: &str) -> Option<&'static ModelInfo> {
    let old_opus = ["claude-opus-4-0", "claude-opus-4-1", "claude-opus-4-2025"];
    if old_opus.iter().any(|prefix| id.starts_with(prefix)) {
        return Some(&OPUS_4_AND_4_1);
    }
    MODELS.iter().find(|m| m.id == id).or_else(|| {
        let family = ["claude-haiku-4", "claude-sonnet-4", "claude-opus-4"]
            .into_iter()
            .find(|f| id.starts_with(f))?;
        MODELS.iter().find(|m| m.id.starts_with(family))
    })
}

/// Whether `requested` names the model `allowed`: the same id, or a dated
/// snapshot of it (`claude-haiku-4-5-20251001` for `claude-haiku-4-5`).
pub fn same_model(allowed: &str, requested: &str) -> bool {
    match requested.strip_prefix(allowed) {
        Some("") => true,
        Some(rest) => {
            let digits = rest.strip_prefix('-').unwrap_or("");
            digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

pub fn label(id: &str) -> String {
    MODELS
        .iter()
        .find(|m| m.id == id)
        .map(|m| m.label.to_owned())
        .unwrap_or_else(|| id.to_owned())
}

/// Tokens of one call, as billed. The token kinds are disjoint: a token is
/// counted in exactly one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    /// Cache writes at the 5-minute TTL.
    pub cache_creation: u64,
    /// Cache writes at the 1-hour TTL (not included in `cache_creation`).
    pub cache_creation_1h: u64,
    pub cache_read: u64,
    /// Server-side web searches, billed per use.
    pub web_search_requests: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_snapshots_name_their_model() {
        assert!(same_model("claude-haiku-4-5", "claude-haiku-4-5"));
        assert!(same_model("claude-haiku-4-5", "claude-haiku-4-5-20251001"));
        assert!(!same_model("claude-haiku-4-5", "claude-haiku-4-5-1"));
        assert!(!same_model("claude-haiku-4-5", "claude-haiku-4-50"));
        assert!(!same_model("claude-haiku-4-5", "claude-sonnet-4-6"));
    }

    #[test]
    fn cost_is_exact_in_micro_usd() {
        let t = TokenCounts {
            input: 1_000,
            output: 200,
            ..TokenCounts::default()
        };
        // Haiku: 1000 × $1/M + 200 × $5/M = $0.001 + $0.001 = 2000 µ$
        assert_eq!(cost_micro_usd("claude-haiku-4-5", t), 2_000);
        // Sonnet: 1000×3 + 200×15 = 6000 µ$
        assert_eq!(cost_micro_usd("claude-sonnet-4-6", t), 6_000);
        // Opus: 1000×5 + 200×25 = 10000 µ$
        assert_eq!(cost_micro_usd("claude-opus-4-7", t), 10_000);
        // Cache: 10 written at 1.25×3 = 37.5, 10 read at 0.3 = 3 → 40.5 → 41 (half up)
        let cached = TokenCounts {
            cache_creation: 10,
            cache_read: 10,
            ..TokenCounts::default()
        };
        assert_eq!(cost_micro_usd("claude-sonnet-4-6", cached), 41);
        assert_eq!(cost_micro_usd("unknown-model", t), 0);
    }

    #[test]
    fn family_ids_are_priced_like_their_family() {
        assert_eq!(
            find("claude-sonnet-4-5-20250929").map(|m| m.input_usd_per_mtok),
            Some(3)
        );
        assert_eq!(
            find("claude-opus-4-1").map(|m| m.output_usd_per_mtok),
            Some(75),
            "Opus 4.1 kept the old Opus price"
        );
        assert_eq!(
            find("claude-opus-4-20250514").map(|m| m.input_usd_per_mtok),
            Some(15)
        );
        assert_eq!(
            find("claude-opus-4-5-20251101").map(|m| m.output_usd_per_mtok),
            Some(25)
        );
        assert!(find("gpt-4").is_none());
    }
}
