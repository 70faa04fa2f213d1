//! Anthropic's server tools bill per use or per container hour on top of
//! tokens, so on the platform key they are a plan's decision: a plan that
//! does not allow them refuses a request that declares one. Custom tools
//! (the client runs them) cost only tokens and always pass.

use serde_json::Value;

/// Tool type prefixes of Anthropic's server tools.
const SERVER_TOOL_PREFIXES: [&str; 3] = ["web_search_", "web_fetch_", "code_execution_"];

/// The first server tool `body` asks for (its type, or `mcp_servers`).
pub fn requested(body: &Value) -> Option<String> {
    let tools = body.get("tools").and_then(Value::as_array);
    let server_tool = tools.into_iter().flatten().find_map(|tool| {
        let kind = tool.get("type")?.as_str()?;
        SERVER_TOOL_PREFIXES
            .iter()
            .any(|prefix| kind.starts_with(prefix))
            .then(|| kind.to_owned())
    });
    let mcp = body
        .get("mcp_servers")
        .filter(|servers| !servers.is_null() && servers.as_array().is_none_or(|s| !s.is_empty()))
        .map(|_| "mcp_servers".to_owned());
    server_tool.or(mcp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_tools_and_mcp_servers_are_found_and_custom_tools_are_not() {
        let search = json!({"tools":[{"name":"lookup","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}]});
        assert_eq!(requested(&search).as_deref(), Some("web_search_20250305"));
        let fetch = json!({"tools":[{"type":"web_fetch_20250910","name":"web_fetch"}]});
        assert_eq!(requested(&fetch).as_deref(), Some("web_fetch_20250910"));
        let code = json!({"tools":[{"type":"code_execution_20250825","name":"code_execution"}]});
        assert_eq!(requested(&code).as_deref(), Some("code_execution_20250825"));
        let mcp =
            json!({"mcp_servers":[{"type":"url","url":"https://example.com/sse","name":"x"}]});
        assert_eq!(requested(&mcp).as_deref(), Some("mcp_servers"));
        assert_eq!(requested(&json!({"mcp_servers":[]})), None);
        let custom =
            json!({"tools":[{"name":"web_search","description":"mine","input_schema":{}}]});
        assert_eq!(
            requested(&custom),
            None,
            "a custom tool may be named anything"
        );
        assert_eq!(requested(&json!({"tools":"nonsense"})), None);
    }
}
