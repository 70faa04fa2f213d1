//! Chat over HTTP against the mock upstream.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    chat_helpers::{
        chat_app, conversation, mock_with_platform_key, send, send_with, wait_until_reply_settles,
        PLATFORM_KEY,
    },
    db_tests,
    helpers::{spawn_app_with, TestDb, PASSWORD},
    mock::{MockUpstream, VALID_KEY},
};

async fn a_message_streams_a_reply_that_is_stored(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let turn = send(&app, None, "Hello there, show me code").await;
    assert_eq!(turn.status, 200);
    let deltas = turn.events.iter().filter(|e| e["type"] == "delta").count();
    assert!(deltas > 5, "the reply arrives in many pieces, got {deltas}");
    assert_eq!(turn.started()["paid_by"], "platform");
    assert_eq!(turn.started()["title"], "Hello there, show me code");
    let finished = turn.finished();
    assert_eq!(finished["status"], "complete");
    assert!(finished["output_tokens"].as_i64().unwrap() > 0);

    let stored = conversation(&app, turn.conversation_id()).await;
    let messages = stored["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["content"].as_str().unwrap(), turn.text());
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(messages[1]["paid_by"], "platform");

    let calls = mock.received_on("/v1/messages").await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["api_key"], PLATFORM_KEY);
    assert_eq!(calls[0]["anthropic_version"], "2023-06-01");
    assert_eq!(calls[0]["stream"], true);

    // The page itself shows the history after a reload.
    let page = app.get(&format!("/chat/{}", turn.conversation_id())).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Hello there, show me code"));
    assert!(html.contains("data-paid-by=\"platform\""));
}

async fn follow_up_messages_send_the_whole_history(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let first = send(&app, None, "first question").await;
    let id = first.conversation_id();
    let second = send(&app, Some(id), "second question").await;
    assert_eq!(second.conversation_id(), id);
    assert_eq!(second.finished()["status"], "complete");
    let stored = conversation(&app, id).await;
    assert_eq!(stored["messages"].as_array().unwrap().len(), 4);
    // More input tokens the second time: the history went along.
    assert!(second.finished()["input_tokens"].as_i64() > first.finished()["input_tokens"].as_i64());
}

async fn stop_mid_stream_keeps_the_partial_reply(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let mut response = app
        .client
        .post(app.url("/chat/send"))
        .json(&json!({ "conversation_id": null, "text": "tell me slowly mock:slow", "model": "claude-haiku-4-5" }))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("\"type\":\"delta\"") {
        let chunk = response.chunk().await.unwrap().expect("stream continues");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response); // the browser's Stop aborts the request
    let started: serde_json::Value = serde_json::from_str(seen.lines().next().unwrap()).unwrap();
    let assistant_id = started["assistant_message_id"].as_i64().unwrap();
    let (status, content) = wait_until_reply_settles(&app, assistant_id).await;
    assert_eq!(status, "stopped");
    assert!(!content.is_empty(), "the partial text is kept");
    let full = send(&app, None, "tell me slowly").await.text();
    assert!(
        full.starts_with(&content) && full.len() > content.len(),
        "a true prefix of the full reply"
    );
}

async fn overloaded_upstream_gives_a_clear_error_and_the_conversation_goes_on(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let failed = send(&app, None, "please answer mock:529").await;
    assert_eq!(failed.status, 200);
    let finished = failed.finished();
    assert_eq!(finished["status"], "error");
    assert!(
        finished["error"].as_str().unwrap().contains("overloaded"),
        "{finished}"
    );

    let id = failed.conversation_id();
    let retry = send(&app, Some(id), "and now?").await;
    assert_eq!(retry.finished()["status"], "complete");
    let messages = conversation(&app, id).await["messages"]
        .as_array()
        .unwrap()
        .clone();
    let statuses: Vec<&str> = messages
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["complete", "error", "complete", "complete"]);
}

async fn a_cut_stream_keeps_what_arrived_and_says_so(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let turn = send(&app, None, "long answer mock:cut").await;
    let finished = turn.finished();
    assert_eq!(finished["status"], "stopped");
    assert!(
        finished["error"]
            .as_str()
            .unwrap()
            .contains("cut before the reply finished"),
        "{finished}"
    );
    let stored = conversation(&app, turn.conversation_id()).await;
    assert_eq!(
        stored["messages"][1]["content"].as_str().unwrap(),
        turn.text()
    );
    assert!(!turn.text().is_empty());
    let next = send(&app, Some(turn.conversation_id()), "go on").await;
    assert_eq!(next.finished()["status"], "complete");
}

async fn other_users_conversations_are_404(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let id = send(&app, None, "my secret plans").await.conversation_id();

    let eve = app.new_client();
    app.call_with(
        &eve,
        "signup",
        &[("email", "eve@example.com"), ("password", PASSWORD)],
    )
    .await;
    let page = app.get_with(&eve, &format!("/chat/{id}")).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(!page.text().await.unwrap().contains("my secret plans"));
    let missing = app.get_with(&eve, "/chat/999999").await;
    assert_eq!(
        missing.status(),
        StatusCode::NOT_FOUND,
        "same answer as for a missing id"
    );

    let read = app
        .call_with(&eve, "chat/conversation", &[("id", &id.to_string())])
        .await;
    assert_eq!(read.status(), StatusCode::NOT_FOUND);
    let rename = app
        .call_with(
            &eve,
            "chat/rename",
            &[("id", &id.to_string()), ("title", "mine")],
        )
        .await;
    assert_eq!(rename.status(), StatusCode::NOT_FOUND);
    let delete = app
        .call_with(&eve, "chat/delete", &[("id", &id.to_string())])
        .await;
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
    let post = send_with(
        &app,
        &eve,
        json!({ "conversation_id": id, "text": "hi", "model": "claude-haiku-4-5" }),
    )
    .await;
    assert_eq!(post.status, 404);
    assert_eq!(
        conversation(&app, id).await["title"],
        "my secret plans",
        "untouched"
    );
}

async fn hostile_markdown_is_neutralised(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let evil = "mock:echo <script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3))";
    let turn = send(&app, None, evil).await;
    let html = app
        .get(&format!("/chat/{}", turn.conversation_id()))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert(1)"), "raw script in page");
    assert!(!html.contains("<img src=x"), "raw img in page");
    assert!(
        !html.contains("href=\"javascript:"),
        "javascript link in page"
    );
    assert!(html.contains("&lt;script&gt;"), "shown as text instead");
}

async fn conversations_list_newest_first_and_can_be_renamed_and_deleted(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let first = send(&app, None, "first topic").await.conversation_id();
    let second = send(&app, None, "second topic").await.conversation_id();
    let list: serde_json::Value = app
        .call("chat/conversations", &[])
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [second, first]);

    let renamed = app
        .call(
            "chat/rename",
            &[("id", &first.to_string()), ("title", "  Renamed  ")],
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(conversation(&app, first).await["title"], "Renamed");
    let empty = app
        .call(
            "chat/rename",
            &[("id", &first.to_string()), ("title", "  ")],
        )
        .await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);

    assert_eq!(
        app.call("chat/delete", &[("id", &second.to_string())])
            .await
            .status(),
        StatusCode::OK
    );
    let list: serde_json::Value = app
        .call("chat/conversations", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let messages: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = $1")
            .bind(second)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(messages, 0, "messages go with their conversation");
}

async fn regenerate_replaces_the_last_reply(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let id = send(&app, None, "a question").await.conversation_id();
    let again = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": id, "model": "claude-haiku-4-5", "regenerate": true }),
    )
    .await;
    assert_eq!(again.finished()["status"], "complete");
    let messages = conversation(&app, id).await["messages"]
        .as_array()
        .unwrap()
        .clone();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    assert_eq!(mock.received_on("/v1/messages").await.len(), 2);
}

async fn bad_requests_get_clear_errors_and_no_upstream_call(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let empty = send(&app, None, "   ").await;
    assert_eq!(empty.status, 400);
    let opus = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": null, "text": "hi", "model": "claude-opus-4-7" }),
    )
    .await;
    assert_eq!(opus.status, 400);
    assert!(opus.events[0].to_string().contains("not available to you"));
    assert!(mock.received_on("/v1/messages").await.is_empty());

    let anonymous = reqwest::Client::new()
        .post(app.url("/chat/send"))
        .json(&json!({ "conversation_id": null, "text": "hi", "model": "claude-haiku-4-5" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn without_any_key_the_user_is_told_what_to_do(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = spawn_app_with(db, &["--anthropic-base-url", &mock.url]).await;
    app.signup("ada@example.com", PASSWORD).await;
    let turn = send(&app, None, "hello").await;
    assert_eq!(turn.status, 400);
    assert!(turn.events[0]
        .to_string()
        .contains("Add your own Anthropic API key in Settings"));
    assert!(mock.received_on("/v1/messages").await.is_empty());
}

async fn a_saved_key_pays_and_a_rejected_one_never_falls_back(db: TestDb) {
    let mock = MockUpstream::start_with_keys(&[crate::chat_helpers::PLATFORM_KEY, VALID_KEY]);
    let app = chat_app(db, &mock, &[]).await;
    assert_eq!(
        app.call("keys/save", &[("api_key", VALID_KEY)])
            .await
            .status(),
        StatusCode::OK
    );
    let turn = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": null, "text": "on my key", "model": "claude-opus-4-7" }),
    )
    .await;
    assert_eq!(turn.started()["paid_by"], "user");
    assert_eq!(turn.finished()["status"], "complete");
    let calls = mock.received_on("/v1/messages").await;
    assert_eq!(calls.last().unwrap()["api_key"], VALID_KEY);
    let status: serde_json::Value = app.call("keys/status", &[]).await.json().await.unwrap();
    assert!(status["last_used"].is_string(), "last use recorded");

    // Anthropic revokes the key: simulate by pointing the stored key at one the mock refuses.
    sqlx::query("UPDATE user_api_keys SET rejected_at = NULL")
        .execute(&app.db)
        .await
        .unwrap();
    let revoked = MockUpstream::start_with_keys(&[crate::chat_helpers::PLATFORM_KEY]);
    let url = app.stop().await;
    let app = crate::helpers::spawn_app_on(
        &url,
        &[
            "--anthropic-base-url",
            &revoked.url,
            "--anthropic-api-key",
            crate::chat_helpers::PLATFORM_KEY,
        ],
    )
    .await;
    app.login("ada@example.com", PASSWORD).await;
    let failed = send(&app, None, "still on my key?").await;
    assert_eq!(failed.started()["paid_by"], "user");
    assert_eq!(
        failed.finished()["error"],
        "Anthropic rejected your key — update it in Settings."
    );
    let calls = revoked.received_on("/v1/messages").await;
    assert_eq!(calls.len(), 1, "exactly one call, no platform retry");
    assert_eq!(calls[0]["api_key"], VALID_KEY);
    let status: serde_json::Value = app.call("keys/status", &[]).await.json().await.unwrap();
    assert!(status["health"]["Rejected"].is_object(), "{status}");
    // Next turn refuses up front, still without touching the platform key.
    let next = send(&app, None, "and now?").await;
    assert_eq!(next.status, 400);
    assert_eq!(revoked.received_on("/v1/messages").await.len(), 1);
}

db_tests!(
    thinking_streams_apart_is_stored_and_billed_as_output,
    thinking_that_cannot_fit_the_free_plan_is_refused_with_the_reason,
    the_default_system_prompt_and_a_conversations_own_are_sent,
    editing_an_earlier_message_replaces_it_and_what_followed,
    a_message_streams_a_reply_that_is_stored,
    follow_up_messages_send_the_whole_history,
    stop_mid_stream_keeps_the_partial_reply,
    overloaded_upstream_gives_a_clear_error_and_the_conversation_goes_on,
    a_cut_stream_keeps_what_arrived_and_says_so,
    other_users_conversations_are_404,
    hostile_markdown_is_neutralised,
    conversations_list_newest_first_and_can_be_renamed_and_deleted,
    regenerate_replaces_the_last_reply,
    bad_requests_get_clear_errors_and_no_upstream_call,
    without_any_key_the_user_is_told_what_to_do,
    a_saved_key_pays_and_a_rejected_one_never_falls_back,
);

async fn editing_an_earlier_message_replaces_it_and_what_followed(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let first = send(&app, None, "first question").await;
    let id = first.conversation_id();
    let first_message = first.started()["user_message_id"].as_i64().unwrap();
    let second = send(&app, Some(id), "second question").await;
    let second_message = second.started()["user_message_id"].as_i64().unwrap();

    // Editing the second message keeps the first turn.
    let later = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": id, "text": "second, rephrased", "model": "claude-haiku-4-5",
                "edit_message_id": second_message }),
    )
    .await;
    assert_eq!(later.status, 200, "{:?}", later.events);
    let kept: Vec<String> = conversation(&app, id).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert_eq!(kept[0], "first question");
    assert_eq!(kept[2], "second, rephrased");
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(
        sent.last().unwrap()["body"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the first turn, then the edited message"
    );

    let edited = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": id, "text": "first question, better put", "model": "claude-haiku-4-5",
                "edit_message_id": first_message }),
    )
    .await;
    assert_eq!(edited.status, 200, "{:?}", edited.events);
    assert_eq!(
        edited.started()["title"],
        "first question, better put",
        "the title follows its first message"
    );
    let upstream = mock.received_on("/v1/messages").await;
    let history = upstream.last().unwrap()["body"]["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        history.len(),
        1,
        "only the edited message goes up: {history:?}"
    );
    assert_eq!(history[0]["content"], "first question, better put");

    let view = conversation(&app, id).await;
    let contents: Vec<(&str, &str)> = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(contents.len(), 2, "{contents:?}");
    assert_eq!(contents[0], ("user", "first question, better put"));
    assert_eq!(contents[1].0, "assistant");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 4, "the replaced turns' calls stay in the ledger");

    // A message that is gone (or another conversation's) is refused and
    // nothing changes; so is editing while regenerating.
    for body in [
        json!({ "conversation_id": id, "text": "again", "model": "claude-haiku-4-5", "edit_message_id": first_message }),
        json!({ "conversation_id": id, "text": "again", "model": "claude-haiku-4-5", "edit_message_id": first_message, "regenerate": true }),
        json!({ "conversation_id": null, "text": "again", "model": "claude-haiku-4-5", "edit_message_id": 1 }),
    ] {
        let refused = send_with(&app, &app.client, body).await;
        assert_eq!(refused.status, 400, "{:?}", refused.events);
    }
    assert_eq!(
        conversation(&app, id).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(mock.received_on("/v1/messages").await.len(), 4);
}

async fn the_default_system_prompt_and_a_conversations_own_are_sent(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let last_system = || async {
        mock.received_on("/v1/messages").await.last().unwrap()["body"]["system"].clone()
    };
    let first = send(&app, None, "no prompt yet").await;
    let id = first.conversation_id();
    assert_eq!(
        last_system().await,
        serde_json::Value::Null,
        "none by default"
    );

    let saved = app
        .call(
            "account/save_system_prompt",
            &[("system_prompt", "  Answer in French.  ")],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::OK);
    send(&app, Some(id), "hello").await;
    assert_eq!(last_system().await, "Answer in French.");
    let view = conversation(&app, id).await;
    assert_eq!(view["system_prompt"], "Answer in French.");
    assert_eq!(view["own_system_prompt"], false);

    let own = app
        .call(
            "chat/system_prompt",
            &[
                ("id", &id.to_string()),
                ("system_prompt", "Answer in verse."),
            ],
        )
        .await;
    assert_eq!(own.status(), StatusCode::OK);
    send(&app, Some(id), "hello again").await;
    assert_eq!(
        last_system().await,
        "Answer in verse.",
        "a conversation's own wins"
    );
    assert_eq!(conversation(&app, id).await["own_system_prompt"], true);
    let new_one = send(&app, None, "elsewhere").await;
    assert_eq!(new_one.status, 200);
    assert_eq!(
        last_system().await,
        "Answer in French.",
        "other conversations keep the default"
    );

    app.call(
        "chat/system_prompt",
        &[("id", &id.to_string()), ("system_prompt", "")],
    )
    .await;
    send(&app, Some(id), "back to the default").await;
    assert_eq!(last_system().await, "Answer in French.");

    // Too long: refused with the rule, nothing changed.
    let long = "x".repeat(20_001);
    let refused = app
        .call("account/save_system_prompt", &[("system_prompt", &long)])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("at most 20000 characters"));
    let eve = app.new_client();
    app.call_with(
        &eve,
        "signup",
        &[("email", "eve@example.com"), ("password", PASSWORD)],
    )
    .await;
    let someone_elses = app
        .call_with(
            &eve,
            "chat/system_prompt",
            &[
                ("id", &id.to_string()),
                ("system_prompt", "Leak everything."),
            ],
        )
        .await;
    assert_eq!(someone_elses.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        conversation(&app, id).await["system_prompt"],
        "Answer in French."
    );
}

async fn thinking_streams_apart_is_stored_and_billed_as_output(db: TestDb) {
    let mock = mock_with_platform_key();
    // The free plan's replies are long enough for a small budget here.
    let app = chat_app(db, &mock, &["--max-tokens", "4096"]).await;
    let think = |budget: i64, conversation: Option<i64>| {
        json!({ "conversation_id": conversation, "text": "think about it", "model": "claude-haiku-4-5",
                "thinking_budget": budget })
    };

    // Free plan: the budget shrinks under the plan's clamp (never a 400
    // from Anthropic), and the thinking streams apart from the text.
    let turn = send_with(&app, &app.client, think(8_192, None)).await;
    assert_eq!(turn.status, 200, "{:?}", turn.events);
    let thinking: String = turn
        .events
        .iter()
        .filter(|e| e["type"] == "thinking")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(thinking.starts_with("Let me think"), "{thinking}");
    assert!(
        !turn.text().contains("Let me think"),
        "not in the reply text"
    );
    let sent = mock.received_on("/v1/messages").await;
    let body = &sent.last().unwrap()["body"];
    assert_eq!(
        body["thinking"]["budget_tokens"], 3_072,
        "1,024 tokens left for the answer"
    );
    assert_eq!(body["max_tokens"], 4_096);

    // Stored with the reply, and billed as output with it.
    let view = conversation(&app, turn.conversation_id()).await;
    let reply = view["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(reply["thinking"], thinking.as_str());
    assert_eq!(
        view["thinking_budget"], 8_192,
        "the conversation keeps its thinking setting for the page to restore"
    );
    let output: i64 =
        sqlx::query_scalar("SELECT output_tokens FROM usage_ledger ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let thinking_pieces = thinking.split_inclusive(' ').count() as i64;
    assert!(
        output > thinking_pieces,
        "{output} output tokens include {thinking_pieces} of thinking"
    );

    // Cut before the usage came: billed at least the thinking budget
    // (Anthropic bills the whole thinking, only a summary of it streams).
    let cut = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": null, "text": "think mock:cut", "model": "claude-haiku-4-5",
                "thinking_budget": 8_192 }),
    )
    .await;
    assert_eq!(cut.status, 200);
    let billed: i64 =
        sqlx::query_scalar("SELECT output_tokens FROM usage_ledger ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        billed >= 3_072,
        "a cut thinking turn is billed {billed} output tokens"
    );

    // A budget under Anthropic's minimum is refused before any call.
    let calls = mock.received_on("/v1/messages").await.len();
    let small = send_with(&app, &app.client, think(512, Some(turn.conversation_id()))).await;
    assert_eq!(small.status, 400);
    assert_eq!(mock.received_on("/v1/messages").await.len(), calls);
    let view = conversation(&app, turn.conversation_id()).await;
    assert_eq!(
        view["thinking_budget"], 8_192,
        "a refused turn changes nothing"
    );

    // A turn without thinking turns it off for the conversation.
    let plain = send(&app, Some(turn.conversation_id()), "no thinking now").await;
    assert_eq!(plain.status, 200);
    let view = conversation(&app, turn.conversation_id()).await;
    assert_eq!(view["thinking_budget"], Value::Null);
}

async fn thinking_that_cannot_fit_the_free_plan_is_refused_with_the_reason(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let refused = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": null, "text": "think", "model": "claude-haiku-4-5", "thinking_budget": 2_048 }),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.events[0]
            .to_string()
            .contains("1024 tokens your plan allows"),
        "{:?}",
        refused.events
    );
    assert!(mock.received_on("/v1/messages").await.is_empty());

    // On the user's own key the reply grows to hold the budget.
    app.call("keys/save", &[("api_key", VALID_KEY)]).await;
    let turn = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": null, "text": "think", "model": "claude-haiku-4-5", "thinking_budget": 16_384 }),
    )
    .await;
    assert_eq!(turn.status, 200, "{:?}", turn.events);
    let body = mock.received_on("/v1/messages").await.last().unwrap()["body"].clone();
    assert_eq!(body["thinking"]["budget_tokens"], 16_384);
    assert!(body["max_tokens"].as_i64().unwrap() > 16_384);
    // More than the model can write is refused before any call.
    let calls = mock.received_on("/v1/messages").await.len();
    let too_big = send_with(
        &app,
        &app.client,
        json!({ "conversation_id": null, "text": "think", "model": "claude-haiku-4-5", "thinking_budget": 64_000 }),
    )
    .await;
    assert_eq!(too_big.status, 400);
    assert!(too_big.events[0]
        .to_string()
        .contains("writes at most 64000 tokens"));
    assert_eq!(mock.received_on("/v1/messages").await.len(), calls);
}
