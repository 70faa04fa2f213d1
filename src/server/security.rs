//! Request-level web security: CSRF checks and response security headers.

use axum::{
    extract::Request,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Content-Security-Policy for HTML pages. Scripts and styles come only
/// from our origin or with this response's nonce (the hydration bootstrap,
/// the inlined stylesheet); wasm needs `wasm-unsafe-eval`. No other inline
/// style or script, no framing.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// A build's own assets: a year, and no revalidation even on reload.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Used for responses that did not set their own policy (JSON, assets).
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Whether `path` is a file in a build's own directory, `/pkg/v/<id>/…`
/// (not the pointer to the current one, nor a copy being written).
fn in_build_directory(path: &str) -> bool {
    path.strip_prefix("/pkg/v/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(id, file)| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) && !file.is_empty()
        })
}

/// Where a page's shell leaves the nonce its inline scripts and style
/// carry (`app::shell`), for `web_security` to put the page's CSP on the
/// response. Carried by the request itself, so the header never depends on
/// the renderer passing it on (a page once went out with the locked-down
/// default policy, which blocked its own scripts).
#[derive(Clone, Default)]
pub struct PageNonce(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl PageNonce {
    pub fn set(&self, nonce: &str) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(nonce.to_owned());
        }
    }

    fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

/// Middleware: refuses cross-site state-changing requests, then adds the
/// security headers to whatever the app answers.
pub async fn web_security(secure_cookies: bool, mut req: Request, next: Next) -> Response {
    if let Err(reason) = check_same_origin(req.method(), req.uri().path(), req.headers()) {
        tracing::warn!(reason, path = %req.uri().path(), "refused cross-site request");
        return (
            StatusCode::FORBIDDEN,
            "This request came from another site and was refused.",
        )
            .into_response();
    }
    // A build's own directory (`/pkg/v/<id>/`) never changes: a browser
    // keeps its files for good, and the next build is a new address. Other
    // assets must be revalidated (a 304 when unchanged), or after an
    // upgrade a browser could pair a new page with the old wasm, which
    // cannot hydrate it. Pages and data, and whatever else did not choose,
    // are a user's own: never stored.
    let path = req.uri().path();
    let is_asset = path.starts_with("/pkg/");
    let is_versioned = in_build_directory(path);
    // Only a page renders the shell: assets and server functions need no slot.
    let might_be_page = !is_asset && matches!(*req.method(), Method::GET | Method::HEAD);
    let page_nonce = might_be_page.then(PageNonce::default);
    if let Some(slot) = &page_nonce {
        req.extensions_mut().insert(slot.clone());
    }
    let mut response = next.run(req).await;
    // A page: its shell has run by the time its head is sent.
    if let Some(csp) = page_nonce
        .and_then(|slot| slot.get())
        .and_then(|nonce| HeaderValue::from_str(&page_csp(&nonce)).ok())
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let cache_policy = match (is_asset, is_versioned) {
        // Only what was found: a 404 today may be there after a deploy.
        (_, true) if found => IMMUTABLE,
        (true, _) => "no-cache",
        (false, _) => "no-store",
    };
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(cache_policy));
    if is_asset {
        // An asset comes as its brotli or gzip copy, or as it is, by the
        // request's Accept-Encoding: a shared cache must keep them apart.
        headers
            .entry(header::VARY)
            .or_insert(HeaderValue::from_static("accept-encoding"));
    }
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, DEFAULT_CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        header::REFERRER_POLICY,
        "strict-origin-when-cross-origin",
    );
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if secure_cookies {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}

/// CSRF defence for cookie-authenticated routes. The gateway (`/v1/…`) uses
/// bearer tokens, which a foreign site cannot attach, so it is exempt.
///
/// A state-changing request is refused when the browser says it is
/// cross-site (`Sec-Fetch-Site`), or when its `Origin` (or, lacking that,
/// `Referer`) names another host than the one it was sent to. Requests with
/// neither header come from non-browser clients, which carry no ambient
/// cookies of a victim.
fn check_same_origin(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), &'static str> {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if safe || path.starts_with("/v1/") {
        return Ok(());
    }
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header_str(header::HeaderName::from_static("sec-fetch-site")) {
        if site == "cross-site" || site == "same-site" {
            return Err("sec-fetch-site");
        }
    }
    let Some(host) = header_str(header::HOST) else {
        return Err("missing host");
    };
    let source = header_str(header::ORIGIN).or_else(|| header_str(header::REFERER));
    match source {
        None => Ok(()),
        Some(source) => match url::Url::parse(source) {
            Ok(url) if authority(&url).eq_ignore_ascii_case(host) => Ok(()),
            _ => Err("foreign origin"),
        },
    }
}

fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_files_in_a_build_directory_are_immutable() {
        assert!(in_build_directory("/pkg/v/0123abcd4567ef89/keyward.wasm"));
        assert!(in_build_directory(
            "/pkg/v/0123abcd4567ef89/snippets/x/a.js"
        ));
        assert!(!in_build_directory("/pkg/v/current"), "the pointer changes");
        assert!(!in_build_directory("/pkg/v/.0123abcd.partial/keyward.wasm"));
        assert!(!in_build_directory("/pkg/v/0123abcd4567ef89/"));
        assert!(!in_build_directory("/pkg/keyward.wasm"));
        assert!(!in_build_directory("/chat/v/0123/x"));
    }

    #[test]
    fn same_origin_post_passes_and_foreign_origin_fails() {
        let ok = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
        ]);
        assert!(check_same_origin(&Method::POST, "/api/login", &ok).is_ok());
        let evil = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
        ]);
        assert!(check_same_origin(&Method::POST, "/api/login", &evil).is_err());
        let other_port = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:4000"),
        ]);
        assert!(check_same_origin(&Method::POST, "/logout", &other_port).is_err());
    }

    #[test]
    fn referer_is_used_without_origin() {
        let evil = headers(&[
            ("host", "kw.example"),
            ("referer", "https://evil.example/page"),
        ]);
        assert!(check_same_origin(&Method::POST, "/logout", &evil).is_err());
        let ok = headers(&[
            ("host", "kw.example"),
            ("referer", "https://kw.example/chat"),
        ]);
        assert!(check_same_origin(&Method::POST, "/logout", &ok).is_ok());
    }

    #[test]
    fn cross_site_fetch_metadata_is_refused_and_gateway_is_exempt() {
        let cross = headers(&[("host", "kw.example"), ("sec-fetch-site", "cross-site")]);
        assert!(check_same_origin(&Method::POST, "/api/x", &cross).is_err());
        assert!(check_same_origin(&Method::POST, "/v1/messages", &cross).is_ok());
        assert!(check_same_origin(&Method::GET, "/chat", &cross).is_ok());
    }

    #[test]
    fn csp_carries_nonce_and_forbids_framing() {
        let csp = page_csp("abc");
        assert!(csp.contains("script-src 'self' 'nonce-abc'"));
        assert!(csp.contains("style-src 'self' 'nonce-abc';"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
