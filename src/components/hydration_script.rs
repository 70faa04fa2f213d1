//! The script that makes the server-rendered page live: it loads the glue
//! and the wasm after the first paint (`hydration_script.js` says why) and
//! starts `crate::hydrate`. In place of Leptos's `HydrationScripts`, which
//! preloads both from the head, as it does the lazily loaded page's chunks.

use leptos::prelude::*;

/// Goes last in `<body>`: on the server it renders after the page, so it
/// knows which lazily loaded page (and so which wasm chunks) is on it.
#[component]
pub fn HydrationScript(options: LeptosOptions) -> impl IntoView {
    let nonce = leptos::nonce::use_nonce();
    // Awaited in order, after the routes: by then a lazy page that rendered
    // has registered itself.
    Suspend::new(async move {
        let script = script_text(&options, &page_chunks(&options));
        view! { <script type="module" nonce=nonce inner_html=script></script> }
    })
}

fn script_text(options: &LeptosOptions, chunks: &[String]) -> String {
    let pkg = format!("/{}", options.site_pkg_dir);
    let glue = format!("{pkg}/{}.js", options.output_name);
    let wasm = format!("{pkg}/{}.wasm", wasm_name(options));
    let chunks: Vec<String> = chunks.iter().map(|file| format!("{pkg}/{file}")).collect();
    let arguments = serde_json::json!([glue, wasm, chunks]).to_string();
    // In <script> nothing is escaped: no argument may close it.
    let arguments = arguments.replace('<', "\\u003c");
    let arguments = &arguments[1..arguments.len() - 1];
    format!("{}({arguments});", *SCRIPT)
}

/// The script as pages carry it, made once: its comments are for this
/// repository's readers, not worth sending with every page.
static SCRIPT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    include_str!("hydration_script.js")
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
});

/// The wasm's file name as cargo-leptos writes it: with `LEPTOS_OUTPUT_NAME`
/// set at compile time (as the Makefile does for every build) the output
/// name itself, else wasm-bindgen's `_bg` one.
fn wasm_name(options: &LeptosOptions) -> String {
    if option_env!("LEPTOS_OUTPUT_NAME").is_some() {
        options.output_name.to_string()
    } else {
        format!("{}_bg", options.output_name)
    }
}

/// The wasm chunks of the lazily loaded page this response rendered.
#[cfg(feature = "ssr")]
fn page_chunks(options: &LeptosOptions) -> Vec<String> {
    // Leptos's lazy routes register their name here while the server renders
    // them (hidden API: what its own HydrationScripts reads too).
    let Some(rendered) = use_context::<leptos::PrefetchLazyFn>() else {
        return Vec::new();
    };
    let keys: Vec<&'static str> = rendered
        .0
        .try_with_value(|keys| keys.iter().copied().collect())
        .unwrap_or_default();
    crate::server::assets::split_manifest::chunk_files(options, keys)
}

#[cfg(not(feature = "ssr"))]
fn page_chunks(_options: &LeptosOptions) -> Vec<String> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> LeptosOptions {
        LeptosOptions::builder()
            .output_name("keyward")
            .site_pkg_dir("pkg/v/abc")
            .build()
    }

    #[test]
    fn the_script_names_the_builds_files_and_sends_no_comments() {
        let script = script_text(&options(), &["chunk_7.wasm".to_owned()]);
        let wasm = format!("/pkg/v/abc/{}.wasm", wasm_name(&options()));
        assert!(script.ends_with(&format!(
            r#"}})("/pkg/v/abc/keyward.js","{wasm}",["/pkg/v/abc/chunk_7.wasm"]);"#
        )));
        assert!(!script.contains("//"), "{script}");
        assert!(script.contains("first-contentful-paint"));
    }

    #[test]
    fn no_argument_can_close_the_script() {
        let script = script_text(&options(), &["</script><b>.wasm".to_owned()]);
        assert!(!script.contains("</script"), "{script}");
        assert!(script.contains(r"\u003c/script>\u003cb>.wasm"));
    }
}
