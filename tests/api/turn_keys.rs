//! A message sent again after the browser lost its first try (Stop before
//! the reply began, a dropped connection): the server may have stored that
//! try, so the same turn key takes its place instead of storing the message
//! twice, or a second conversation.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    chat_helpers::{chat_app, conversation, mock_with_platform_key, send_with, Turn},
    db_tests,
    helpers::{TestApp, TestDb, PASSWORD},
};

async fn send_keyed(
    app: &TestApp,
    client: &reqwest::Client,
    conversation_id: Option<i64>,
    text: &str,
    key: &str,
) -> Turn {
    send_with(
        app,
        client,
        json!({ "conversation_id": conversation_id, "text": text,
                "model": "claude-haiku-4-5", "turn_key": key }),
    )
    .await
}

fn contents(conversation: &Value) -> Vec<(String, String)> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = m["role"].as_str().unwrap().to_owned();
            (role, m["content"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

async fn conversation_ids(app: &TestApp, client: &reqwest::Client) -> Vec<i64> {
    let list: Value = app
        .call_with(client, "chat/conversations", &[])
        .await
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

async fn a_message_sent_again_with_its_key_takes_the_place_of_the_stored_try(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    // The first try of a new chat reached the server, which stored it; the
    // browser never saw the answer and sends it again, same key.
    let lost = send_keyed(&app, &app.client, None, "hello there", "k-1").await;
    assert_eq!(lost.status, 200, "{:?}", lost.events);
    let again = send_keyed(&app, &app.client, None, "hello there", "k-1").await;
    assert_eq!(again.status, 200, "{:?}", again.events);
    let id = again.conversation_id();
    assert_eq!(id, lost.conversation_id(), "the same conversation");
    assert_eq!(conversation_ids(&app, &app.client).await, [id]);
    let messages = contents(&conversation(&app, id).await);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0], ("user".into(), "hello there".into()));
    assert_eq!(messages[1].0, "assistant");
    // Upstream saw the message once in each call, never twice in one.
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["body"]["messages"].as_array().unwrap().len(), 1);

    // A next message has a key of its own and follows the turn.
    let next = send_keyed(&app, &app.client, Some(id), "and then?", "k-2").await;
    assert_eq!(next.status, 200, "{:?}", next.events);
    let messages = contents(&conversation(&app, id).await);
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[2], ("user".into(), "and then?".into()));
    // Sent again into the conversation it went to, the later turn is
    // replaced and the first kept.
    send_keyed(&app, &app.client, Some(id), "and then?", "k-2").await;
    let messages = contents(&conversation(&app, id).await);
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[0].1, "hello there");
    assert_eq!(messages[2].1, "and then?");

    // A conversation that went on since the try (in another tab, say) loses
    // nothing: the message is stored as a turn of its own.
    let late = send_keyed(&app, &app.client, Some(id), "hello there", "k-1").await;
    assert_eq!(late.status, 200, "{:?}", late.events);
    let messages = contents(&conversation(&app, id).await);
    assert_eq!(messages.len(), 6, "{messages:?}");
    assert_eq!(messages[0].1, "hello there");
    assert_eq!(messages[2].1, "and then?");
    assert_eq!(messages[4].1, "hello there");
    // Nor does another text under the key of the last turn.
    send_keyed(&app, &app.client, Some(id), "last words", "k-3").await;
    send_keyed(&app, &app.client, Some(id), "other words", "k-3").await;
    let messages = contents(&conversation(&app, id).await);
    assert_eq!(messages.len(), 10, "{messages:?}");
    assert_eq!(messages[6].1, "last words");
    assert_eq!(messages[8].1, "other words");
}

async fn turn_keys_are_each_users_own_and_checked(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let mine = send_keyed(&app, &app.client, None, "my plans", "shared-key").await;
    let mine = mine.conversation_id();

    // Another user with the same key gets a conversation of their own, and
    // Ada's stays as it was.
    let eve = app.new_client();
    app.call_with(
        &eve,
        "signup",
        &[("email", "eve@example.com"), ("password", PASSWORD)],
    )
    .await;
    let theirs = send_keyed(&app, &eve, None, "my plans", "shared-key").await;
    assert_eq!(theirs.status, 200, "{:?}", theirs.events);
    assert_ne!(theirs.conversation_id(), mine);
    assert_eq!(contents(&conversation(&app, mine).await).len(), 2);

    // A key in another conversation than the one asked for is a new turn.
    let other = send_keyed(&app, &app.client, None, "second topic", "key-2").await;
    let other = other.conversation_id();
    let moved = send_keyed(&app, &app.client, Some(other), "my plans", "shared-key").await;
    assert_eq!(moved.conversation_id(), other);
    assert_eq!(contents(&conversation(&app, other).await).len(), 4);
    assert_eq!(contents(&conversation(&app, mine).await).len(), 2);

    // Keys the page never makes are refused before anything is stored or sent.
    let calls = mock.received_on("/v1/messages").await.len();
    let long = "k".repeat(65);
    for bad in ["", "../../etc", "a b", "ключ", long.as_str()] {
        let refused = send_keyed(&app, &app.client, None, "hello", bad).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST.as_u16(), "{bad:?}");
        assert!(
            refused.events[0].to_string().contains("malformed"),
            "{:?}",
            refused.events
        );
    }
    assert_eq!(mock.received_on("/v1/messages").await.len(), calls);
    assert_eq!(conversation_ids(&app, &app.client).await.len(), 2);
}

db_tests!(
    a_message_sent_again_with_its_key_takes_the_place_of_the_stored_try,
    turn_keys_are_each_users_own_and_checked,
);
