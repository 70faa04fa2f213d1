//! Reading a Messages request body: just enough to route, check and clamp
//! it. The body itself goes upstream as the client sent it, unless the
//! platform's `max_tokens` clamp has to rewrite that one field.

use axum::body::{Body, Bytes};
use serde::Deserialize;
use serde_json::Value;

use super::error::GatewayError;
use crate::server::{
    calls::{estimate, server_tools},
    limits::WorstCase,
};

/// The fields keyward looks at; every other field passes through untouched.
#[derive(Debug, Deserialize)]
pub struct MessagesProbe {
    pub model: Option<String>,
    pub max_tokens: Option<Value>,
    #[serde(default)]
    pub stream: Option<Value>,
    #[serde(default)]
    pub thinking: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: Option<i64>,
    pub stream: bool,
    /// `thinking.budget_tokens` when `thinking` is enabled.
    pub thinking_budget: Option<i64>,
}

/// Reads the whole body, refusing more than `limit` bytes with 413 and a
/// body that takes longer than `timeout` with 408.
pub async fn read_body(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, GatewayError> {
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await;
    let Ok(read) = read else {
        return Err(GatewayError::body_timeout(timeout.as_secs()));
    };
    read.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            GatewayError::too_large(limit)
        } else {
            GatewayError::invalid_request("Could not read the request body.")
        }
    })
}

/// Parses the routing fields, with Anthropic-style messages for bad input.
pub fn parse(body: &[u8]) -> Result<MessagesRequest, GatewayError> {
    // serde would also read the probe from an array (`["m", 10]`), which
    // is no request: an object only.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(GatewayError::invalid_request(
            "The request body must be a JSON object.",
        ));
    }
    let probe: MessagesProbe = serde_json::from_slice(body).map_err(|err| {
        GatewayError::invalid_request(format!("The request body is not valid JSON: {err}"))
    })?;
    let model = match probe.model {
        Some(model) if !model.is_empty() => model,
        _ => return Err(GatewayError::invalid_request("model: Field required")),
    };
    let max_tokens = match probe.max_tokens {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_i64().filter(|n| *n >= 1).ok_or_else(|| {
            GatewayError::invalid_request("max_tokens: Input should be a positive integer")
        })?),
    };
    let stream = match probe.stream {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => stream,
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "stream: Input should be a valid boolean",
            ))
        }
    };
    // Read for billing only (Anthropic checks the rest of it).
    let thinking_budget = probe
        .thinking
        .filter(|thinking| thinking["type"] == "enabled")
        .and_then(|thinking| thinking["budget_tokens"].as_i64());
    Ok(MessagesRequest {
        model,
        max_tokens,
        stream,
        thinking_budget,
    })
}

/// A request that must reserve before it goes upstream, read once.
#[derive(Debug)]
pub struct Prepared {
    /// The body to send: `max_tokens` lowered to the plan's clamp if above it.
    pub body: Bytes,
    pub worst: WorstCase,
    /// The first Anthropic server tool the request declares.
    pub server_tool: Option<String>,
    /// What the clamp changed besides `max_tokens`, for the client to see
    /// (the `keyward-adjusted` response header).
    pub adjusted: Option<Adjusted>,
}

/// A field the clamp had to change so the request stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjusted {
    /// The thinking budget, lowered below the clamped `max_tokens`.
    ThinkingBudget(i64),
    /// Thinking, turned off: the clamp leaves no room for the smallest
    /// budget Anthropic accepts.
    ThinkingDisabled,
}

impl Adjusted {
    pub fn header_value(self) -> String {
        match self {
            Adjusted::ThinkingBudget(budget) => format!("thinking-budget={budget}"),
            Adjusted::ThinkingDisabled => "thinking-disabled".to_owned(),
        }
    }
}

/// The smallest thinking budget Anthropic accepts.
const MIN_THINKING_BUDGET: i64 = 1024;

/// Keeps manual extended thinking valid under a clamped `max_tokens`
/// (Anthropic wants `1024 <= budget_tokens < max_tokens`): the budget is
/// lowered to half the clamp, or to the minimum, and when even the minimum
/// does not fit, thinking is turned off for the call, with the context
/// edits that need it (Claude Code asks to clear old thinking, which
/// Anthropic refuses without thinking). A request whose budget already
/// fits, or that does not use manual thinking (adaptive thinking has no
/// budget), is left alone.
fn fit_thinking(value: &mut Value, max_tokens: i64) -> Option<Adjusted> {
    let thinking = value.get("thinking")?;
    if thinking["type"] != "enabled" {
        return None;
    }
    // Any number: a budget written as 32000.0 is still too large.
    let budget = thinking["budget_tokens"].as_f64()?;
    if budget < max_tokens as f64 {
        return None;
    }
    let lowered = ((max_tokens / 2).max(MIN_THINKING_BUDGET) as f64).min(budget) as i64;
    if lowered < max_tokens && lowered >= MIN_THINKING_BUDGET {
        value["thinking"]["budget_tokens"] = Value::from(lowered);
        return Some(Adjusted::ThinkingBudget(lowered));
    }
    // Earlier thinking blocks in the history may stay: Anthropic accepts
    // them with thinking off and leaves them out of the context.
    let object = value.as_object_mut()?;
    object.remove("thinking");
    drop_thinking_edits(object);
    Some(Adjusted::ThinkingDisabled)
}

/// Removes the context-management edits that only work with thinking on
/// (`clear_thinking_…`), and `context_management` itself if none is left.
fn drop_thinking_edits(request: &mut serde_json::Map<String, Value>) {
    let Some(edits) = request
        .get_mut("context_management")
        .and_then(|management| management.get_mut("edits"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    edits.retain(|edit| {
        !edit["type"]
            .as_str()
            .is_some_and(|kind| kind.starts_with("clear_thinking"))
    });
    if edits.is_empty() {
        request.remove("context_management");
    }
}

/// For a call that must reserve first: the body, with `max_tokens` lowered
/// to the plan's `clamp` on the platform key, the call's worst case, and
/// the server tools it asks for.
pub fn prepare_for_hold(
    body: Bytes,
    request: &MessagesRequest,
    clamp: Option<i64>,
) -> Result<Prepared, GatewayError> {
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|_| GatewayError::invalid_request("The request body is not valid JSON."))?;
    let wanted = request
        .max_tokens
        .ok_or_else(|| GatewayError::invalid_request("max_tokens: Field required"))?;
    let output_tokens = clamp.map_or(wanted, |clamp| wanted.min(clamp));
    // More than the model can write is refused upstream, so it is never
    // held (the body keeps what the client asked for).
    let most = crate::model::models::find(&request.model).map_or(i64::MAX, |m| m.max_output_tokens);
    let worst = WorstCase {
        input_tokens: estimate::request_input_tokens(&value),
        output_tokens: output_tokens.min(most),
    };
    let server_tool = server_tools::requested(&value);
    if output_tokens == wanted {
        return Ok(Prepared {
            body,
            worst,
            server_tool,
            adjusted: None,
        });
    }
    value["max_tokens"] = Value::from(output_tokens);
    let adjusted = fit_thinking(&mut value, output_tokens);
    Ok(Prepared {
        body: Bytes::from(value.to_string()),
        worst,
        server_tool,
        adjusted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_routing_fields_and_refuses_bad_ones() {
        let request = parse(br#"{"model":"m","max_tokens":10,"stream":true,"x":1}"#).unwrap();
        assert_eq!(
            request,
            MessagesRequest {
                model: "m".into(),
                max_tokens: Some(10),
                stream: true,
                thinking_budget: None,
            }
        );
        assert_eq!(parse(b"{").unwrap_err().kind, "invalid_request_error");
        assert_eq!(
            parse(br#"{"max_tokens":1}"#).unwrap_err().message,
            "model: Field required"
        );
        assert!(parse(br#"{"model":"m","max_tokens":0}"#).is_err());
        assert!(parse(br#"{"model":"m","stream":"yes"}"#).is_err());
        assert!(parse(br#"[]"#).is_err());
        assert!(
            parse(br#"["m", 10]"#).is_err(),
            "serde reads a struct from an array too"
        );
    }

    #[test]
    fn clamps_only_above_the_plan_and_keeps_other_fields() {
        let body = Bytes::from(
            json!({"model":"m","max_tokens":4000,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"t"}],"metadata":{"user_id":"u"}})
                .to_string(),
        );
        let request = parse(&body).unwrap();
        let clamped = prepare_for_hold(body.clone(), &request, Some(1024)).unwrap();
        let worst = clamped.worst;
        let value: Value = serde_json::from_slice(&clamped.body).unwrap();
        assert_eq!(value["max_tokens"], 1024);
        assert_eq!(value["metadata"]["user_id"], "u");
        assert_eq!(value["tools"][0]["name"], "t");
        assert!(worst.input_tokens > 0);
        assert_eq!(worst.output_tokens, 1024);

        let same = prepare_for_hold(body.clone(), &request, Some(8000)).unwrap();
        assert_eq!(
            same.body, body,
            "an unclamped body goes upstream byte for byte"
        );
        assert_eq!(same.worst.output_tokens, 4000);
        let same = prepare_for_hold(body.clone(), &request, None).unwrap();
        assert_eq!(same.body, body, "a user's key is never clamped");
        assert_eq!(same.worst.output_tokens, 4000);
        assert_eq!(same.server_tool, None, "a custom tool is no server tool");
    }

    #[test]
    fn never_holds_more_output_than_the_model_can_write() {
        let body = Bytes::from(
            json!({"model":"claude-haiku-4-5","max_tokens":1_000_000_000i64,"messages":[{"role":"user","content":"hi"}]})
                .to_string(),
        );
        let own_key = prepare_for_hold(body.clone(), &parse(&body).unwrap(), None).unwrap();
        assert_eq!(own_key.worst.output_tokens, 64_000);
        assert_eq!(
            own_key.body, body,
            "the client's max_tokens still goes upstream"
        );
        let unknown = Bytes::from(
            json!({"model":"claude-next","max_tokens":500_000,"messages":[{"role":"user","content":"hi"}]})
                .to_string(),
        );
        let held = prepare_for_hold(unknown.clone(), &parse(&unknown).unwrap(), None).unwrap();
        assert_eq!(
            held.worst.output_tokens, 500_000,
            "an unknown model's limit is not guessed"
        );
    }

    /// Any JSON value, shaped like a request or not.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (1i64..100_000).prop_map(Value::from),
            "[a-z_\\-]{0,12}".prop_map(Value::from),
            Just(Value::from("enabled")),
            Just(Value::from("clear_thinking_20251015")),
            (1024i64..40_000).prop_map(Value::from),
            (1024.0f64..40_000.0).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("model".to_owned()),
                        Just("max_tokens".to_owned()),
                        Just("stream".to_owned()),
                        Just("thinking".to_owned()),
                        Just("messages".to_owned()),
                        Just("budget_tokens".to_owned()),
                        Just("type".to_owned()),
                        Just("context_management".to_owned()),
                        Just("edits".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any JSON: a 400 in Anthropic's shape, or a body that goes upstream
        /// as sent on the user's key, and differs only in `max_tokens` and
        /// `thinking` under the plan's clamp (and only when clamped).
        #[test]
        fn any_json_is_refused_or_forwarded_as_sent_except_the_clamp(
            value in any_json(),
            clamp in proptest::option::of(1i64..50_000),
        ) {
            let body = Bytes::from(value.to_string());
            let parsed = match parse(&body) {
                Ok(parsed) => parsed,
                Err(err) => {
                    proptest::prop_assert_eq!(err.kind, "invalid_request_error");
                    return Ok(());
                }
            };
            let prepared = match prepare_for_hold(body.clone(), &parsed, clamp) {
                Ok(prepared) => prepared,
                Err(err) => {
                    proptest::prop_assert_eq!(err.kind, "invalid_request_error");
                    return Ok(());
                }
            };
            let wanted = parsed.max_tokens.expect("prepared, so max_tokens was there");
            if clamp.is_none_or(|clamp| wanted <= clamp) {
                proptest::prop_assert_eq!(prepared.body, body);
                proptest::prop_assert_eq!(prepared.adjusted, None);
                return Ok(());
            }
            let mut sent: Value = serde_json::from_slice(&prepared.body).unwrap();
            let mut original = value.clone();
            let clamp = clamp.unwrap();
            proptest::prop_assert_eq!(&sent["max_tokens"], &Value::from(clamp));
            // Manual thinking the clamp touched is valid, or gone with the
            // edits that need it.
            if sent["thinking"]["type"] == "enabled" {
                if let Some(budget) = sent["thinking"]["budget_tokens"].as_f64() {
                    let changed = sent["thinking"] != original["thinking"];
                    proptest::prop_assert!(
                        !changed || (1024.0..clamp as f64).contains(&budget),
                        "budget {} under a clamp of {}", budget, clamp
                    );
                }
            }
            if prepared.adjusted == Some(Adjusted::ThinkingDisabled) {
                proptest::prop_assert!(sent.get("thinking").is_none());
                let edits = sent["context_management"]["edits"].as_array().cloned().unwrap_or_default();
                proptest::prop_assert!(!edits.iter().any(|edit| edit["type"].as_str().is_some_and(|t| t.starts_with("clear_thinking"))));
            }
            for object in [&mut sent, &mut original] {
                let object = object.as_object_mut().unwrap();
                object.remove("max_tokens");
                object.remove("thinking");
                object.remove("context_management");
            }
            proptest::prop_assert_eq!(sent, original);
        }
    }

    fn with_thinking(max_tokens: i64, budget: i64, clamp: i64) -> (Value, Option<Adjusted>) {
        let body = Bytes::from(
            json!({"model":"m","max_tokens":max_tokens,"messages":[],
                   "thinking":{"type":"enabled","budget_tokens":budget}})
            .to_string(),
        );
        let request = parse(&body).unwrap();
        let prepared = prepare_for_hold(body, &request, Some(clamp)).unwrap();
        (
            serde_json::from_slice(&prepared.body).unwrap(),
            prepared.adjusted,
        )
    }

    #[test]
    fn a_clamp_keeps_the_thinking_budget_below_max_tokens_or_turns_thinking_off() {
        // Claude Code's request on a plan that clamps to 1,024: no room for
        // the smallest budget, so thinking is off for the call.
        let (value, adjusted) = with_thinking(32_000, 31_999, 1024);
        assert_eq!(adjusted, Some(Adjusted::ThinkingDisabled));
        assert!(value.get("thinking").is_none());
        assert_eq!(value["max_tokens"], 1024);
        // A budget written as a float is a number all the same.
        let body = Bytes::from(
            json!({"model":"m","max_tokens":32_000,"messages":[],
                   "thinking":{"type":"enabled","budget_tokens":32_000.0}})
            .to_string(),
        );
        let prepared = prepare_for_hold(body.clone(), &parse(&body).unwrap(), Some(8_192)).unwrap();
        assert_eq!(prepared.adjusted, Some(Adjusted::ThinkingBudget(4_096)));
        // Thinking off takes Claude Code's "clear old thinking" edit with it
        // (Anthropic refuses that edit without thinking), and keeps others.
        let body = Bytes::from(
            json!({"model":"m","max_tokens":32_000,"messages":[],
                   "thinking":{"type":"enabled","budget_tokens":31_999},
                   "context_management":{"edits":[
                       {"type":"clear_thinking_20251015"},
                       {"type":"clear_tool_uses_20250919"}]}})
            .to_string(),
        );
        let prepared = prepare_for_hold(body.clone(), &parse(&body).unwrap(), Some(1_024)).unwrap();
        let sent: Value = serde_json::from_slice(&prepared.body).unwrap();
        assert_eq!(
            sent["context_management"],
            json!({"edits":[{"type":"clear_tool_uses_20250919"}]})
        );
        // Room for a budget: half the clamp, at least the minimum.
        let (value, adjusted) = with_thinking(32_000, 10_000, 8_192);
        assert_eq!(adjusted, Some(Adjusted::ThinkingBudget(4_096)));
        assert_eq!(value["thinking"]["budget_tokens"], 4_096);
        let (value, adjusted) = with_thinking(32_000, 2_000, 1_500);
        assert_eq!(adjusted, Some(Adjusted::ThinkingBudget(1_024)));
        assert_eq!(value["thinking"]["budget_tokens"], 1_024);
        // A budget that fits the clamp is the client's choice.
        let (value, adjusted) = with_thinking(32_000, 2_000, 4_096);
        assert_eq!(adjusted, None);
        assert_eq!(value["thinking"]["budget_tokens"], 2_000);
        assert_eq!(
            Adjusted::ThinkingDisabled.header_value(),
            "thinking-disabled"
        );
    }
}
