//! A fake Anthropic API for `make run` (demo mode), tests and benchmarks.
//!
//! Speaks `GET /v1/models` and `POST /v1/messages` (JSON and SSE) like the real
//! API, accepts only the configured keys, and injects faults on request:
//! put one of these words in the last user message, or send it in an
//! `x-mock-fault` header —
//! `mock:529`, `mock:429`, `mock:500`, `mock:400`, `mock:slow`, `mock:cut`,
//! `mock:hang` (answers after 30 s). A request that declares a
//! `web_search_*` tool reports one search in its usage.
//! A message starting with `mock:echo ` is answered with the rest of it.
//! Prompt caching is emulated (`cache_control` breakpoints, per key, five
//! minutes, the models' minimum lengths).
//! `GET /_mock/requests` lists what it received (for tests).

#[path = "mock_llm/cache.rs"]
mod cache;
#[path = "mock_llm/faults.rs"]
mod faults;
#[path = "mock_llm/models.rs"]
mod models;
#[path = "mock_llm/replies.rs"]
mod replies;
#[path = "mock_llm/server.rs"]
mod server;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "mock_llm", about = "Fake Anthropic API for demos and tests")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "MOCK_LLM_ADDR", default_value = "127.0.0.1:4010")]
    addr: std::net::SocketAddr,
    /// Accepted API keys, comma-separated; others get 401.
    #[arg(
        long,
        env = "MOCK_LLM_KEYS",
        value_delimiter = ',',
        default_value = "sk-ant-api03-keyward-mock-platform-key"
    )]
    keys: Vec<String>,
    /// Pause between streamed text deltas, in milliseconds.
    #[arg(long, env = "MOCK_LLM_DELAY_MS", default_value_t = 15)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    // Tests read this first line to learn the port.
    println!("mock_llm listening on http://{}", listener.local_addr()?);
    let state = server::MockState::new(args.keys, std::time::Duration::from_millis(args.delay_ms));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = server::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
