//! The Claude models keyward knows, with list prices (USD per million tokens,
//! which is the same number as micro-USD per token).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: &'static str,
    pub label: &'static str,
    pub input_usd_per_mtok: u64,
    pub output_usd_per_mtok: u64,
}

/// Price families: any `claude-opus-4*`, `claude-sonnet-4*`, `claude-haiku-4*`
/// id is priced like its family (from Anthropic's published list prices).
pub const MODELS: [ModelInfo; 3] = [
    ModelInfo {
        id: "claude-haiku-4-5",
        label: "Claude Haiku 4.5",
        input_usd_per_mtok: 1,
        output_usd_per_mtok: 5,
    },
    ModelInfo {
        id: "claude-sonnet-4-6",
        label: "Claude Sonnet 4.6",
        input_usd_per_mtok: 3,
        output_usd_per_mtok: 15,
    },
    ModelInfo {
        id: "claude-opus-4-7",
        label: "Claude Opus 4.7",
        input_usd_per_mtok: 5,
        output_usd_per_mtok: 25,
    },
];

pub fn find(id: &str) -> Option<&'static ModelInfo> {
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

/// Tokens of one call, as billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

/// Cost in micro-USD, exact: cache writes cost 1.25× input, cache reads
/// 0.1× input. Computed in hundredths of a micro-dollar, rounded half up once.
pub fn cost_micro_usd(model: &str, tokens: TokenCounts) -> u64 {
    let Some(price) = find(model) else { return 0 };
    let centi = tokens.input * price.input_usd_per_mtok * 100
        + tokens.output * price.output_usd_per_mtok * 100
        + tokens.cache_creation * price.input_usd_per_mtok * 125
        + tokens.cache_read * price.input_usd_per_mtok * 10;
    (centi + 50) / 100
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
            cache_creation: 0,
            cache_read: 0,
        };
        // Haiku: 1000 × $1/M + 200 × $5/M = $0.001 + $0.001 = 2000 µ$
        assert_eq!(cost_micro_usd("claude-haiku-4-5", t), 2_000);
        // Sonnet: 1000×3 + 200×15 = 6000 µ$
        assert_eq!(cost_micro_usd("claude-sonnet-4-6", t), 6_000);
        // Opus: 1000×5 + 200×25 = 10000 µ$
        assert_eq!(cost_micro_usd("claude-opus-4-7", t), 10_000);
        // Cache: 10 written at 1.25×3 = 37.5, 10 read at 0.3 = 3 → 40.5 → 41 (half up)
        let cached = TokenCounts {
            input: 0,
            output: 0,
            cache_creation: 10,
            cache_read: 10,
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
            Some(25)
        );
        assert!(find("gpt-4").is_none());
    }
}
