//! Talking to `POST /chat/send` like the chat page does.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app_with, TestApp, TestDb, PASSWORD},
    mock::MockUpstream,
};

pub const PLATFORM_KEY: &str = "sk-ant-api03-test-platform-key-9999-PLAT";

/// An app on the mock with a platform key, and a signed-up user.
pub async fn chat_app(db: TestDb, mock: &MockUpstream, extra: &[&str]) -> TestApp {
    let mut args = vec![
        "--anthropic-base-url",
        mock.url.as_str(),
        "--anthropic-api-key",
        PLATFORM_KEY,
    ];
    args.extend_from_slice(extra);
    let app = spawn_app_with(db, &args).await;
    app.signup("ada@example.com", PASSWORD).await;
    app
}

pub fn mock_with_platform_key() -> MockUpstream {
    MockUpstream::start_with_keys(&[
        PLATFORM_KEY,
        crate::mock::VALID_KEY,
        crate::mock::SECOND_VALID_KEY,
        crate::mock::FORBIDDEN_KEY,
    ])
}

pub struct Turn {
    pub status: u16,
    pub events: Vec<Value>,
}

impl Turn {
    pub fn started(&self) -> &Value {
        self.events
            .iter()
            .find(|e| e["type"] == "started")
            .expect("a started event")
    }

    pub fn finished(&self) -> &Value {
        self.events
            .iter()
            .find(|e| e["type"] == "finished")
            .expect("a finished event")
    }

    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter(|e| e["type"] == "delta")
            .map(|e| e["text"].as_str().unwrap_or_default())
            .collect()
    }

    pub fn conversation_id(&self) -> i64 {
        self.started()["conversation_id"].as_i64().unwrap()
    }
}

pub async fn send_with(app: &TestApp, client: &reqwest::Client, body: Value) -> Turn {
    let response = client
        .post(app.url("/chat/send"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let events = if status == 200 {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    } else {
        vec![serde_json::from_str(&text).unwrap_or(Value::String(text))]
    };
    Turn { status, events }
}

pub async fn send(app: &TestApp, conversation_id: Option<i64>, text: &str) -> Turn {
    send_with(
        app,
        &app.client,
        json!({ "conversation_id": conversation_id, "text": text, "model": "claude-haiku-4-5" }),
    )
    .await
}

pub async fn conversation(app: &TestApp, id: i64) -> Value {
    let response = app
        .call("chat/conversation", &[("id", &id.to_string())])
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits (without sleeping blindly) until the reply leaves `streaming`.
pub async fn wait_until_reply_settles(app: &TestApp, message_id: i64) -> (String, String) {
    for _ in 0..200 {
        let row: (String, String) =
            sqlx::query_as("SELECT status, content FROM messages WHERE id = $1")
                .bind(message_id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        if row.0 != "streaming" {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("reply {message_id} never settled");
}
