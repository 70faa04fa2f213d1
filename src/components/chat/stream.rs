//! Browser side of `POST /chat/send`: a `fetch` whose body is read as it
//! arrives (NDJSON, one `ChatEvent` per line) and that Stop can abort.

use crate::model::chat::{ChatEvent, ChatRequest};

/// Why a send ended without a `Finished` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The server refused the request (message for the user).
    Refused(String),
    /// The connection failed or was aborted.
    Interrupted(String),
}

mod imp {
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        AbortSignal, Headers, ReadableStreamDefaultReader, RequestCredentials, RequestInit,
        Response,
    };

    use super::{ChatEvent, ChatRequest, SendError};
    use crate::error::AppError;

    fn interrupted(err: JsValue) -> SendError {
        SendError::Interrupted(
            err.as_string()
                .unwrap_or_else(|| "the connection was interrupted".into()),
        )
    }

    pub async fn send(
        request: &ChatRequest,
        signal: &AbortSignal,
        on_event: &mut dyn FnMut(ChatEvent),
    ) -> Result<(), SendError> {
        let window =
            web_sys::window().ok_or_else(|| SendError::Interrupted("no browser window".into()))?;
        let body =
            serde_json::to_string(request).map_err(|e| SendError::Interrupted(e.to_string()))?;
        let headers = Headers::new().map_err(interrupted)?;
        headers
            .set("content-type", "application/json")
            .map_err(interrupted)?;
        headers
            .set("accept", "application/x-ndjson")
            .map_err(interrupted)?;
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&body));
        init.set_signal(Some(signal));
        init.set_credentials(RequestCredentials::SameOrigin);

        let response: Response =
            JsFuture::from(window.fetch_with_str_and_init("/chat/send", &init))
                .await
                .map_err(interrupted)?
                .dyn_into()
                .map_err(interrupted)?;
        if !response.ok() {
            let status = response.status();
            let text = match response.text() {
                Ok(promise) => JsFuture::from(promise)
                    .await
                    .ok()
                    .and_then(|v| v.as_string())
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            let message = serde_json::from_str::<AppError>(&text)
                .map(|e| e.to_string())
                .unwrap_or_else(|_| {
                    format!("The server could not take this message (HTTP {status}). Try again.")
                });
            return Err(SendError::Refused(message));
        }
        let body = response
            .body()
            .ok_or_else(|| SendError::Interrupted("empty response".into()))?;
        let reader: ReadableStreamDefaultReader = body
            .get_reader()
            .dyn_into()
            .map_err(|obj: js_sys::Object| interrupted(obj.into()))?;
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = JsFuture::from(reader.read()).await.map_err(interrupted)?;
            let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
                .map(|v| v.is_truthy())
                .unwrap_or(true);
            if done {
                return Ok(());
            }
            let value =
                js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).map_err(interrupted)?;
            buffer.extend_from_slice(&js_sys::Uint8Array::new(&value).to_vec());
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                if let Ok(event) = serde_json::from_slice::<ChatEvent>(&line) {
                    on_event(event);
                }
            }
        }
    }
}

/// Sends one turn and calls `on_event` for each event as it arrives.
pub async fn send(
    request: &ChatRequest,
    signal: &web_sys::AbortSignal,
    on_event: &mut dyn FnMut(ChatEvent),
) -> Result<(), SendError> {
    imp::send(request, signal, on_event).await
}
