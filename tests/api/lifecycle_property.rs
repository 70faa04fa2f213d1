//! Random interleavings of calls, hang-ups, upstream cuts and restarts on
//! one user never leave the limits' counters different from the ledger,
//! and never let the day's limit be exceeded.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::{
    books::balanced_books,
    chat_helpers::{chat_app, mock_with_platform_key, PLATFORM_KEY},
    gateway::create_token,
    helpers::{spawn_app_on, TestApp, TestDb},
    mock::MockUpstream,
};

const REQUESTS_PER_DAY: i64 = 4;

#[derive(Debug, Clone, Copy)]
enum Op {
    Json,
    Stream,
    /// Reads the start of a slow stream, then hangs up.
    HangUpMidStream,
    /// Hangs up before the upstream answers.
    HangUpBeforeAnswer,
    /// The upstream cuts the stream halfway.
    UpstreamCut,
    /// The upstream answers 529.
    UpstreamError,
    /// Stops the server gracefully and starts it again on the same database.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Json),
        Just(Op::Stream),
        Just(Op::HangUpMidStream),
        Just(Op::HangUpBeforeAnswer),
        Just(Op::UpstreamCut),
        Just(Op::UpstreamError),
        Just(Op::Restart),
    ]
}

fn args(mock: &MockUpstream) -> Vec<String> {
    [
        "--anthropic-base-url",
        &mock.url,
        "--anthropic-api-key",
        PLATFORM_KEY,
        "--requests-per-day",
        &REQUESTS_PER_DAY.to_string(),
        "--requests-per-minute",
        "1000",
        "--shutdown-grace-secs",
        "1",
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn call(app: &TestApp, token: &str, op: Op) {
    let stream = !matches!(op, Op::Json | Op::HangUpBeforeAnswer);
    let (fault, text) = match op {
        Op::Json | Op::Stream => (None, "hello".to_owned()),
        Op::HangUpMidStream => (Some("slow"), "hello".to_owned()),
        Op::HangUpBeforeAnswer => (Some("hang"), "hello".to_owned()),
        Op::UpstreamCut => (
            None,
            format!("mock:echo {}mock:cut", "some words ".repeat(20)),
        ),
        Op::UpstreamError => (Some("529"), "hello".to_owned()),
        Op::Restart => unreachable!("not a call"),
    };
    // The mock reads its fault word from the message keyward forwards.
    let text = match fault {
        Some(fault) => format!("{text} mock:{fault}"),
        None => text,
    };
    let body: Value = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 200,
        "stream": stream,
        "messages": [{ "role": "user", "content": text }],
    });
    let mut request = reqwest::Client::new()
        .post(app.url("/v1/messages"))
        .header("x-api-key", token)
        .json(&body);
    if matches!(op, Op::HangUpBeforeAnswer) {
        request = request.timeout(Duration::from_millis(300));
    }
    let Ok(mut response) = request.send().await else {
        return;
    };
    if matches!(op, Op::HangUpMidStream) {
        let _ = response.chunk().await;
        return;
    }
    while let Ok(Some(_)) = response.chunk().await {}
}

async fn run(ops: &[Op], db: TestDb) {
    let mock = mock_with_platform_key();
    let args = args(&mock);
    let extra: Vec<&str> = args[4..].iter().map(String::as_str).collect();
    let mut app = chat_app(db, &mock, &extra).await;
    let token = create_token(&app, "t").await;
    for op in ops {
        if let Op::Restart = op {
            let url = app.stop().await;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            app = spawn_app_on(&url, &args).await;
        } else {
            call(&app, &token, *op).await;
        }
    }
    let books = balanced_books(&app.db).await;
    assert!(books.requests <= REQUESTS_PER_DAY, "{ops:?}: {books:?}");
    let upstream = mock.received_on("/v1/messages").await.len() as i64;
    assert!(
        upstream <= REQUESTS_PER_DAY,
        "{ops:?}: {upstream} upstream calls"
    );
    assert!(books.ledger_requests >= upstream, "{ops:?}: {books:?}");
    app.stop().await;
}

/// Few cases: each starts servers and makes real calls.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `ops` on `db` on a runtime of its own (proptest bodies are sync).
fn run_on(ops: &[Op], db: TestDb) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(ops, db));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_calls_hang_ups_cuts_and_restarts_keep_the_books(ops in prop::collection::vec(op(), 1..8)) {
        run_on(&ops, TestDb::Sqlite);
    }
}

mod on_postgres {
    use super::*;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn random_calls_hang_ups_cuts_and_restarts_keep_the_books(ops in prop::collection::vec(op(), 1..8)) {
            run_on(&ops, TestDb::postgres());
        }
    }
}
