//! A chat turn's writes (a new conversation, the edited message and what
//! followed it going, the user's message, the reply placeholder) are one
//! transaction: a failure at any statement leaves the conversation as it
//! was, and the reservation goes back.

use serde_json::json;

use crate::{
    chat_helpers::{chat_app, conversation, mock_with_platform_key, send, send_with},
    db_tests,
    helpers::{TestApp, TestDb},
};

/// Makes the database refuse to store a message that says "boom": a fault
/// injected after the turn's first statements have run.
async fn refuse_boom_messages(app: &TestApp) {
    if app.sqlite_path().is_some() {
        sqlx::query(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages WHEN NEW.content = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
        )
        .execute(&app.db)
        .await
        .unwrap();
    } else {
        sqlx::query(
            "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN \
             IF NEW.content = 'boom' THEN RAISE EXCEPTION 'injected fault'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .execute(&app.db)
        .await
        .unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages FOR EACH ROW \
             EXECUTE FUNCTION refuse_boom()",
        )
        .execute(&app.db)
        .await
        .unwrap();
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

async fn a_turn_that_fails_part_way_leaves_nothing_half_done(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let first = send(&app, None, "first question").await;
    let id = first.conversation_id();
    send(&app, Some(id), "second question").await;
    let before = conversation(&app, id).await["messages"].clone();
    assert_eq!(before.as_array().unwrap().len(), 4);
    let first_message = before[0]["id"].as_i64().unwrap();
    refuse_boom_messages(&app).await;
    let calls = mock.received_on("/v1/messages").await.len();

    // An edit: the later turns are deleted, then storing the new message
    // fails. They are all still there, the title too.
    let edit = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": id, "text": "boom", "model": "claude-haiku-4-5",
                "edit_message_id": first_message }),
    )
    .await;
    assert_eq!(edit.status, 500, "{:?}", edit.events);
    assert!(
        !edit.events[0].to_string().contains("injected"),
        "no database text reaches the user: {:?}",
        edit.events
    );
    let after = conversation(&app, id).await;
    assert_eq!(after["messages"], before, "the edit left nothing half done");
    assert_eq!(after["title"], "first question");

    // A first message: the conversation is created, then the message
    // fails. No empty conversation is left in the list.
    let conversations = count(&app, "SELECT COUNT(*) FROM conversations").await;
    let new = send(&app, None, "boom").await;
    assert_eq!(new.status, 500);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM conversations").await,
        conversations
    );

    // Nothing went upstream, and the conversation goes on.
    assert_eq!(mock.received_on("/v1/messages").await.len(), calls);
    let next = send(&app, Some(id), "third question").await;
    assert_eq!(next.status, 200, "{:?}", next.events);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM usage_ledger").await,
        3,
        "one ledger row per call that went upstream"
    );
}

db_tests!(a_turn_that_fails_part_way_leaves_nothing_half_done);
