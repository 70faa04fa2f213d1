//! The HTML shell, the root component and the routes.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    lazy_route, path, Lazy, LazyRoute, SsrMode,
};

use crate::{
    components::{auth_state::AuthState, hydration_script::HydrationScript, nav::Nav},
    model::{SiteInfo, UserView},
    pages::{
        admin::AdminPage, admin_audit::AdminAuditPage, admin_plans::AdminPlansPage,
        admin_user::AdminUserPage, chat::ChatPage, home::HomePage, login::LoginPage,
        not_found::NotFound, settings::SettingsPage, signup::SignupPage,
    },
};

/// The document around the app. On the server it also hands this
/// response's nonce (which the hydration script and the inlined stylesheet
/// carry) to `security::web_security`, which sets the page's CSP with it.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_page_csp();
    let stylesheet = stylesheet(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                {stylesheet}
                <MetaTags />
            </head>
            <body>
                <App />
                <HydrationScript options />
            </body>
        </html>
    }
}

/// The current build's stylesheet: inlined when the build was published,
/// else linked from the pkg directory pages use (a published build's is
/// cached for good, so it is always this build's).
fn stylesheet(options: &LeptosOptions) -> AnyView {
    #[cfg(feature = "ssr")]
    if let Some(css) = crate::server::assets::inline_css::of_build(options) {
        let nonce = leptos::nonce::use_nonce();
        return view! { <style id="leptos" nonce=nonce inner_html=css.to_string()></style> }
            .into_any();
    }
    let href = format!("/{}/{}.css", options.site_pkg_dir, options.output_name);
    view! { <link rel="stylesheet" id="leptos" href=href /> }.into_any()
}

#[cfg(feature = "ssr")]
fn set_page_csp() {
    use crate::server::security::PageNonce;
    let nonce = leptos::nonce::use_nonce();
    let slot = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<PageNonce>().cloned());
    if let (Some(nonce), Some(slot)) = (nonce, slot) {
        slot.set(&nonce);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let user = SharedValue::new(initial_user).into_inner();
    let site = SharedValue::new(site_info).into_inner();
    provide_context(AuthState::new(user));
    provide_context(site);

    view! {
        <Title formatter=|page: String| if page.is_empty() { "keyward".to_owned() } else { format!("{page} · keyward") } />
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Nav />
            <main id="main">
                // Every page is sent whole, its data in place (SsrMode::Async):
                // the queries take milliseconds, and streamed fragments filled
                // in after the first paint moved the page under the reader
                // (a layout shift of 0.39 on /admin, by Lighthouse).
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/signup") view=SignupPage ssr=SsrMode::Async />
                    <Route path=path!("/chat/:id?") view={Lazy::<ChatRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/settings") view={Lazy::<SettingsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin") view={Lazy::<AdminRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/users/:id") view={Lazy::<AdminUserRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/plans") view={Lazy::<AdminPlansRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/audit") view={Lazy::<AdminAuditRoute>::new()} ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

/// A page whose code the browser loads when it is first opened, from a wasm
/// chunk of its own (`cargo leptos build --split`), so the chat a visitor
/// lands on does not wait for pages most visits never open. The server
/// renders it as any other page and links its chunk for preloading.
macro_rules! lazy_page {
    ($route:ident, $page:ident) => {
        #[doc = concat!("[`", stringify!($page), "`], loaded when first opened.")]
        pub struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                view! { <$page /> }.into_any()
            }
        }
    };
}

lazy_page!(SettingsRoute, SettingsPage);
lazy_page!(AdminRoute, AdminPage);
lazy_page!(AdminUserRoute, AdminUserPage);
lazy_page!(AdminPlansRoute, AdminPlansPage);
lazy_page!(AdminAuditRoute, AdminAuditPage);

/// `/chat`, hydrated in a task of its own after the shell's. The browser
/// compiles each wasm function the first time it runs, so hydrating a page
/// is mostly compiling; done as one task, the chat page and the shell
/// around it held the main thread (a tap, a keystroke) for longer than
/// either does alone. Its code stays in the main wasm: the chat is the page
/// most visits open.
pub struct ChatRoute;

impl LazyRoute for ChatRoute {
    fn data() -> Self {
        ChatRoute
    }

    /// The router hydrates a page once its `preload` is done, and then
    /// needs `view` ready at once (a view still pending would not match the
    /// server's HTML): so the wait is here.
    async fn preload() {
        next_task().await;
    }

    async fn view(_this: Self) -> AnyView {
        view! { <ChatPage /> }.into_any()
    }
}

/// Resolves in the browser's next task (a zero-delay timer), so work after
/// it is not part of the task running now; at once on the server. (A
/// hidden tab runs timers at most once a second: a chat opened in the
/// background hydrates within that second, before anyone looks at it.)
async fn next_task() {
    #[cfg(feature = "hydrate")]
    {
        let timer = js_sys::Promise::new(&mut |resolve, _reject| {
            let queued = web_sys::window()
                .map(|window| window.set_timeout_with_callback(&resolve).is_ok())
                .unwrap_or(false);
            if !queued {
                let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(timer).await;
    }
}

/// The logged-in user of the request being rendered (server), serialised
/// into the page for hydration.
fn initial_user() -> Option<UserView> {
    #[cfg(feature = "ssr")]
    {
        use crate::server::auth::CurrentUser;
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<CurrentUser>().cloned())
            .and_then(|current| current.0)
            .map(|user| user.to_view())
    }
    #[cfg(not(feature = "ssr"))]
    None
}

fn site_info() -> SiteInfo {
    #[cfg(feature = "ssr")]
    {
        use crate::server::state::AppState;
        use_context::<AppState>()
            .map(|state| SiteInfo {
                signup_open: state.config.allow_signup,
                demo_mode: state.config.demo_mode,
            })
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    SiteInfo::default()
}
