//! Every user-visible write is one transaction: a fault injected at a
//! later statement (a database trigger refusing a row) leaves nothing of
//! the earlier ones. A chat turn's writes (a new conversation, the edited
//! message and what followed it going, the user's message, the reply
//! placeholder), and every audited change with its audit row.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    chat_helpers::{chat_app, conversation, mock_with_platform_key, send, send_with},
    db_tests,
    helpers::{TestApp, TestDb, PASSWORD},
    mock::VALID_KEY,
};

/// Makes the database refuse to insert into `table` a row for which the
/// SQL condition `when` (over `NEW`) holds.
async fn refuse_rows(app: &TestApp, table: &str, when: &str) {
    let statements = if app.sqlite_path().is_some() {
        vec![format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN {when} \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        )]
    } else {
        vec![
            format!(
                "CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN \
                 IF {when} THEN RAISE EXCEPTION 'injected fault'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
            format!(
                "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW \
                 EXECUTE FUNCTION refuse_{table}()"
            ),
        ]
    };
    for sql in statements {
        sqlx::query(&sql).execute(&app.db).await.unwrap();
    }
}

/// Makes the database refuse to store a message that says "boom": a fault
/// injected after the turn's first statements have run.
async fn refuse_boom_messages(app: &TestApp) {
    refuse_rows(app, "messages", "NEW.content = 'boom'").await;
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

async fn an_audited_change_whose_audit_row_fails_is_not_made(db: TestDb) {
    let mock = mock_with_platform_key();
    // ada (the admin) and bob, signed in on his own client.
    let app = chat_app(db, &mock, &[]).await;
    let bob = app.new_client();
    let signed_up = app
        .call_with(
            &bob,
            "signup",
            &[("email", "bob@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert!(signed_up.status().is_success(), "{}", signed_up.status());
    let bob_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'bob@example.com'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let audit_rows = count(&app, "SELECT COUNT(*) FROM audit_log").await;
    refuse_rows(&app, "audit_log", "1 = 1").await;

    // Saving a key: the key row would be written first.
    let saved = app.call("keys/save", &[("api_key", VALID_KEY)]).await;
    assert_eq!(saved.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_api_keys").await, 0);

    // Disabling bob: his row, then his sessions, then the audit row.
    let id = bob_id.to_string();
    let disabled = app
        .call(
            "admin/set_disabled",
            &[("user_id", id.as_str()), ("disabled", "true")],
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let still: (i64,) = sqlx::query_as("SELECT disabled FROM users WHERE id = $1")
        .bind(bob_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(still.0, 0, "bob is still enabled");
    let page = app.get_with(&bob, "/settings").await;
    assert_eq!(page.status(), StatusCode::OK, "and still signed in");

    // Making bob an admin, and a new plan.
    let promoted = app
        .call(
            "admin/set_role",
            &[("user_id", id.as_str()), ("admin", "true")],
        )
        .await;
    assert_eq!(promoted.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let plan = app
        .call(
            "admin/save_plan",
            &[
                ("name", "pro"),
                ("requests_per_minute", ""),
                ("requests_per_day", ""),
                ("tokens_per_day", ""),
                ("models[]", "claude-haiku-4-5"),
                ("max_tokens", "1024"),
            ],
        )
        .await;
    assert_eq!(plan.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let plans: Value = app.call("admin/plans", &[]).await.json().await.unwrap();
    assert_eq!(plans.as_array().unwrap().len(), 1, "only the free plan");
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(bob_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(role, "user");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log").await,
        audit_rows
    );
}

db_tests!(
    a_turn_that_fails_part_way_leaves_nothing_half_done,
    an_audited_change_whose_audit_row_fails_is_not_made
);
