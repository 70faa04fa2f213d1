//! CSRF defence and security headers.

use reqwest::{header, StatusCode};

use crate::{
    db_tests,
    helpers::{spawn_app, TestDb, PASSWORD},
};

async fn cross_origin_posts_are_rejected(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let form = [("email", "ada@example.com"), ("password", PASSWORD)];

    let foreign_origin = app
        .client
        .post(app.url("/api/login"))
        .header(header::ORIGIN, "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_origin.status(), StatusCode::FORBIDDEN);

    let foreign_logout = app
        .client
        .post(app.url("/logout"))
        .header(header::ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_logout.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/chat").await.status(),
        StatusCode::OK,
        "the session survived the forged logout"
    );

    let plain = reqwest::Client::new();
    let foreign_referer = plain
        .post(app.url("/api/signup"))
        .header(header::REFERER, "http://evil.example/page")
        .form(&[("email", "x@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_referer.status(), StatusCode::FORBIDDEN);

    let fetch_metadata = plain
        .post(app.url("/api/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(fetch_metadata.status(), StatusCode::FORBIDDEN);
}

async fn pages_carry_security_headers_and_a_nonce_csp(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app.get("/login").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(
        headers[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin"
    );
    assert!(headers.contains_key("x-request-id"));
    let csp = headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    let html = response.text().await.unwrap();
    let nonce = assert_everything_inline_carries_the_headers_nonce(&csp, &html, "/login");

    let other = app.get("/login").await;
    let other_csp = other.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(!other_csp.contains(&nonce), "a fresh nonce per response");

    // Signed in: the chat (with its conversation list), a lazily loaded
    // page, and the not-found page, rendered by the fallback.
    app.signup("csp@example.com", "correct horse battery staple")
        .await;
    for path in ["/chat", "/settings", "/no-such-page"] {
        let page = app.get(path).await;
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let html = page.text().await.unwrap();
        assert_everything_inline_carries_the_headers_nonce(&csp, &html, path);
    }
}

/// The page's CSP names a nonce, and every inline script and style carries
/// exactly it (a page whose header lost its nonce cannot run its own
/// scripts). Returns the nonce.
fn assert_everything_inline_carries_the_headers_nonce(csp: &str, html: &str, path: &str) -> String {
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("{path}: the page's CSP has no nonce: {csp}"))
        .to_owned();
    assert!(
        csp.contains(&format!("script-src 'self' 'nonce-{nonce}'"))
            && csp.contains(&format!("style-src 'self' 'nonce-{nonce}'")),
        "{path}: {csp}"
    );
    let inline = html.matches("<script").count() + html.matches("<style").count();
    let nonces: Vec<&str> = html
        .split("nonce=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        inline > 1,
        "{path}: the hydration script and the stylesheet"
    );
    assert_eq!(
        nonces.len(),
        inline,
        "{path}: every inline script and style has a nonce"
    );
    assert!(
        nonces.iter().all(|n| *n == nonce),
        "{path}: every nonce is the header's"
    );
    nonce
}

async fn json_endpoints_get_a_locked_down_csp(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app.get("/healthz").await;
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
}

/// Pages and server functions take 2 MiB at most (refused on the
/// Content-Length alone, before the body is read); the gateway takes
/// `KEYWARD_MAX_BODY_BYTES` and refuses more in Anthropic's shape.
async fn oversized_bodies_are_refused(db: TestDb) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = crate::chat_helpers::mock_with_platform_key();
    let app = crate::chat_helpers::chat_app(db, &mock, &["--max-body-bytes", "1024"]).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/login HTTP/1.1\r\nHost: {address}\r\nOrigin: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3145728\r\n\r\n",
        app.base
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 64];
    let read = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A long chat-sized form is not the gateway's business: it passes.
    let long = "x".repeat(4096);
    let response = app
        .call("login", &[("email", "a@example.com"), ("password", &long)])
        .await;
    assert_ne!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let token = crate::gateway::create_token(&app, "big").await;
    let body = crate::gateway::body("claude-haiku-4-5", 10, &long);
    let response = crate::gateway::post(&app, &token, "/v1/messages", &body).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "request_too_large");
}

/// The site's pkg directory, where `make test` builds and prepares it.
fn pkg_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site-debug".into()))
        .join("pkg")
}

/// The build directory a page links (`/pkg/v/<id>`), read off the page.
fn linked_build(page: &str) -> String {
    let at = page
        .find("/pkg/v/")
        .expect("pages link a published build (make test runs keyward prepare-assets)");
    let id: String = page[at + "/pkg/v/".len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    format!("/pkg/v/{id}")
}

/// A page links the current build's own directory (and inlines its
/// stylesheet), whose files are cached for good (the next build is a new address, so an upgrade never pairs a
/// page with another build's wasm); other assets are revalidated, and
/// pages and data are never stored.
async fn a_page_links_its_own_build_which_browsers_keep(db: TestDb) {
    let app = spawn_app(db).await;
    let page = app.get("/login").await;
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    let page = page.text().await.unwrap();
    let build = linked_build(&page);
    let current = std::fs::read_to_string(pkg_dir().join("v/current")).unwrap();
    assert_eq!(build, format!("/pkg/v/{}", current.trim()));
    // The stylesheet is inlined whole (first paint waits for no request),
    // under the response's CSP nonce.
    let css = std::fs::read_to_string(
        pkg_dir()
            .join(build.trim_start_matches("/pkg/"))
            .join("keyward.css"),
    )
    .unwrap();
    let inlined = page
        .split_once(r#"<style id="leptos" nonce=""#)
        .and_then(|(_, rest)| rest.split_once("\">"))
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map(|(css, _)| css)
        .expect("the stylesheet is inlined with a nonce");
    assert_eq!(inlined, css);
    for file in ["keyward.js", "keyward.wasm", "keyward.css"] {
        let url = format!("{build}/{file}");
        if file != "keyward.css" {
            assert!(page.contains(&url), "the page links {url}");
        }
        let asset = app.get(&url).await;
        assert_eq!(asset.status(), StatusCode::OK, "{url}");
        assert_eq!(
            asset.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable",
            "{url}"
        );
    }
    // What is not there may be after a deploy: never kept.
    let missing = app.get(&format!("{build}/nothing.js")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()[header::CACHE_CONTROL], "no-cache");
    // The pointer to the current build changes with every build.
    let pointer = app.get("/pkg/v/current").await;
    assert_ne!(
        pointer.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );

    let data = app.call("usage/mine", &[]).await;
    assert_eq!(data.headers()[header::CACHE_CONTROL], "no-store");
    let css = app.get("/pkg/keyward.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()[header::CACHE_CONTROL], "no-cache");
    let modified = css.headers()[header::LAST_MODIFIED].clone();
    let again = app
        .client
        .get(app.url("/pkg/keyward.css"))
        .header(header::IF_MODIFIED_SINCE, modified)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

/// The wasm (and every asset) of a build is served as its brotli or gzip
/// copy, compressed once when the build was prepared (`keyward
/// prepare-assets`, which `make test` and `make build` run), to a browser
/// that accepts it, and as it is to one that does not.
async fn assets_are_served_precompressed(db: TestDb) {
    let app = spawn_app(db).await;
    let build = linked_build(&app.get("/login").await.text().await.unwrap());
    let dir = pkg_dir().join(build.trim_start_matches("/pkg/"));
    for (accepts, encoding) in [("br, gzip", "br"), ("gzip", "gz")] {
        let answer = app
            .client
            .get(app.url(&format!("{build}/keyward.wasm")))
            .header(header::ACCEPT_ENCODING, accepts)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let sent_as = answer.headers()[header::CONTENT_ENCODING].clone();
        assert_eq!(sent_as, if encoding == "gz" { "gzip" } else { "br" });
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(answer.headers()[header::VARY], "accept-encoding");
        let copy = std::fs::read(dir.join(format!("keyward.wasm.{encoding}")))
            .expect("make test compresses the site's assets after building them");
        assert_eq!(answer.bytes().await.unwrap(), copy);
    }
    let plain = app
        .client
        .get(app.url(&format!("{build}/keyward.css")))
        .header(header::ACCEPT_ENCODING, "identity")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let original = std::fs::read(dir.join("keyward.css")).unwrap();
    assert_eq!(plain.bytes().await.unwrap(), original);
}

/// What a page's hydration script loads, once the page is painted: the
/// glue, the wasm and the wasm chunks of a lazily loaded page.
fn hydration_arguments(page: &str) -> (String, String, Vec<String>) {
    let arguments = page
        .rsplit_once("})(")
        .and_then(|(_, rest)| rest.split_once(");</script>"))
        .map(|(arguments, _)| format!("[{arguments}]"))
        .expect("the page ends with its hydration script");
    serde_json::from_str(&arguments).expect("the script's arguments are JSON")
}

/// Nothing is fetched for the wasm before the page is painted: no preload in
/// the head; the hydration script at the end of the body starts the glue, the
/// wasm and, beside them, the chunks of a lazily loaded page: the settings
/// page's own and no admin page's. The chat, in the main wasm, needs none.
async fn a_lazy_page_fetches_its_chunks_beside_the_wasm(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("chunks@example.com", PASSWORD).await;

    let chat = app.get("/chat").await.text().await.unwrap();
    let build = linked_build(&chat);
    let preloads = |page: &str| page.contains(r#"rel="preload""#) || page.contains("modulepreload");
    assert!(!preloads(&chat), "{chat}");
    let (glue, wasm, chunks) = hydration_arguments(&chat);
    assert_eq!(glue, format!("{build}/keyward.js"));
    assert_eq!(wasm, format!("{build}/keyward.wasm"));
    assert_eq!(chunks, Vec::<String>::new());

    let settings = app.get("/settings").await.text().await.unwrap();
    assert!(!preloads(&settings), "{settings}");
    let (_, _, chunks) = hydration_arguments(&settings);
    assert!(
        chunks.iter().any(|chunk| chunk.contains("settings_route")),
        "{chunks:?}"
    );
    assert!(
        !chunks.iter().any(|chunk| chunk.contains("admin")),
        "{chunks:?}"
    );
    for chunk in &chunks {
        assert!(chunk.starts_with(&format!("{build}/")), "{chunk}");
        let answer = app.get(chunk).await;
        assert_eq!(answer.status(), StatusCode::OK, "{chunk}");
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/wasm");
    }
}

db_tests!(
    a_lazy_page_fetches_its_chunks_beside_the_wasm,
    a_page_links_its_own_build_which_browsers_keep,
    assets_are_served_precompressed,
    cross_origin_posts_are_rejected,
    pages_carry_security_headers_and_a_nonce_csp,
    json_endpoints_get_a_locked_down_csp,
    oversized_bodies_are_refused,
);
