//! Conversation list, history, rename and delete. Sending a message streams
//! through `POST /chat/send` instead (see `server::chat`).

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::chat::{ChatOptions, ConversationSummary, ConversationView},
};

#[server(endpoint = "chat/conversations")]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, AppError> {
    use super::context::as_user;
    use crate::server::db::conversations;

    as_user(async |ctx, user| {
        let rows = conversations::list_for_user(&ctx.state.db, user.id, 200).await?;
        Ok(rows
            .into_iter()
            .map(|c| ConversationSummary {
                id: c.id,
                title: c.title,
            })
            .collect())
    })
    .await
}

/// A conversation with its messages; 404 when it is not the caller's.
#[server(endpoint = "chat/conversation")]
pub async fn get_conversation(id: i64) -> Result<ConversationView, AppError> {
    use super::context::as_user;
    use crate::server::{chat, db::conversations};

    as_user(async |ctx, user| {
        let conversation = conversations::find_owned(&ctx.state.db, user.id, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let messages = conversations::messages(&ctx.state.db, id).await?;
        let default = crate::server::db::users::system_prompt(&ctx.state.db, user.id).await?;
        Ok(chat::conversation_view(&conversation, &messages, default))
    })
    .await
}

/// Sets a conversation's own system prompt; an empty one goes back to the
/// default from Settings.
#[server(endpoint = "chat/system_prompt")]
pub async fn set_conversation_system_prompt(
    id: i64,
    system_prompt: String,
) -> Result<(), AppError> {
    use super::context::as_user;
    use crate::{model::chat::clean_system_prompt, server::db::conversations};

    as_user(async |ctx, user| {
        let prompt = clean_system_prompt(&system_prompt).map_err(AppError::Validation)?;
        let found =
            conversations::set_system_prompt(&ctx.state.db, user.id, id, prompt.as_deref()).await?;
        if found {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    })
    .await
}

#[server(endpoint = "chat/rename")]
pub async fn rename_conversation(id: i64, title: String) -> Result<(), AppError> {
    use super::context::as_user;
    use crate::server::db::conversations;

    as_user(async |ctx, user| {
        let title = title.trim();
        if title.is_empty() || title.chars().count() > 120 {
            return Err(AppError::Validation(
                "A title needs 1 to 120 characters.".into(),
            ));
        }
        if conversations::rename(&ctx.state.db, user.id, id, title).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    })
    .await
}

#[server(endpoint = "chat/delete")]
pub async fn delete_conversation(id: i64) -> Result<(), AppError> {
    use super::context::as_user;
    use crate::server::db::conversations;

    as_user(async |ctx, user| {
        if conversations::delete(&ctx.state.db, user.id, id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    })
    .await
}

/// Models this user may pick, on whichever key would pay right now.
#[server(endpoint = "chat/options")]
pub async fn get_chat_options() -> Result<ChatOptions, AppError> {
    use super::context::as_user;
    use crate::{
        model::models,
        server::{db::user_keys, routing, user_keys::ANTHROPIC},
    };

    as_user(async |ctx, user| {
        let own_key = user_keys::find(&ctx.state.db, user.id, ANTHROPIC).await?;
        let has_own_key = own_key.is_some_and(|k| k.rejected_at.is_none());
        let allowed = routing::allowed_models(&ctx.state, user.id, has_own_key).await?;
        let default_model = allowed.first().cloned().unwrap_or_default();
        Ok(ChatOptions {
            models: allowed
                .into_iter()
                .map(|id| (models::label(&id), id))
                .collect(),
            default_model,
            has_own_key,
        })
    })
    .await
}
