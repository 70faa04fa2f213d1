//! Chromium through nginx: the browser suite's way of using keyward, on
//! the production shape (HTTP/2, TLS, two instances).

use std::process::Command;

use crate::stack::{Plan, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_chats_through_nginx_over_http2() {
    let stack = Stack::start("browser", Plan::ROOMY).await;
    let end2end = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("end2end");
    let https = stack.https.clone();
    // Playwright runs on a blocking thread; the stack's tasks go on here.
    let status = tokio::task::spawn_blocking(move || {
        Command::new("npx")
            .args([
                "playwright",
                "test",
                "--config",
                "playwright.deploy.config.ts",
            ])
            .current_dir(end2end)
            .env("KEYWARD_DEPLOY_URL", https)
            .status()
            .expect("run npx playwright (make browser-tools installs it)")
    })
    .await
    .unwrap();
    assert!(status.success(), "Playwright through nginx: {status}");
}
