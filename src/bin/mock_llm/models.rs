//! The model list the mock advertises.

pub const MODELS: [(&str, &str); 3] = [
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("claude-opus-4-7", "Claude Opus 4.7"),
];

pub fn list_json() -> serde_json::Value {
    let data: Vec<_> = MODELS
        .iter()
        .map(|(id, name)| serde_json::json!({ "type": "model", "id": id, "display_name": name, "created_at": "2026-01-01T00:00:00Z" }))
        .collect();
    serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": MODELS[0].0,
        "last_id": MODELS[MODELS.len() - 1].0,
    })
}
