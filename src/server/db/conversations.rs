//! Queries on `conversations` and `messages`. Every read and write names the
//! owner, so one user can never reach another's conversation.

use sqlx::Row;

use super::{optional_word, word, Db, Exec};
pub use crate::model::chat::ReplyUsage;
use crate::model::domain::{MessageStatus, PaidBy, Speaker};

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub model: String,
    pub updated_at: i64,
    /// This conversation's own system prompt (else the user's default).
    pub system_prompt: Option<String>,
    /// Extended thinking's budget as its last turn asked (`None` = off).
    pub thinking_budget: Option<i64>,
}

/// A stored message. `MessageRow::new` makes one with no usage yet.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub role: Speaker,
    pub content: String,
    pub model: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub paid_by: Option<PaidBy>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micro_usd: i64,
    pub cache_read_tokens: i64,
    pub saved_micro_usd: i64,
    pub thinking: Option<String>,
    pub created_at: i64,
}

impl MessageRow {
    pub fn new(id: i64, role: Speaker, content: String, status: MessageStatus) -> Self {
        Self {
            id,
            role,
            content,
            model: String::new(),
            status,
            error: None,
            paid_by: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_micro_usd: 0,
            cache_read_tokens: 0,
            saved_micro_usd: 0,
            thinking: None,
            created_at: 0,
        }
    }
}

const CONVERSATION_COLUMNS: &str =
    "id, user_id, title, model, updated_at, system_prompt, thinking_budget";

fn conversation(row: &sqlx::any::AnyRow) -> Result<ConversationRow, sqlx::Error> {
    Ok(ConversationRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        title: row.try_get("title")?,
        model: row.try_get("model")?,
        updated_at: row.try_get("updated_at")?,
        system_prompt: row.try_get("system_prompt")?,
        thinking_budget: row.try_get("thinking_budget")?,
    })
}

fn message(row: &sqlx::any::AnyRow) -> Result<MessageRow, sqlx::Error> {
    Ok(MessageRow {
        id: row.try_get("id")?,
        role: word(row, "role")?,
        content: row.try_get("content")?,
        model: row.try_get("model")?,
        status: word(row, "status")?,
        error: row.try_get("error")?,
        paid_by: optional_word(row, "paid_by")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cost_micro_usd: row.try_get("cost_micro_usd")?,
        cache_read_tokens: row.try_get("cache_read_tokens")?,
        saved_micro_usd: row.try_get("saved_micro_usd")?,
        thinking: row.try_get("thinking")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn create(
    db: impl Exec<'_>,
    user_id: i64,
    title: &str,
    model: &str,
    now_ms: i64,
) -> Result<ConversationRow, sqlx::Error> {
    let now = now_ms;
    let sql = format!(
        "INSERT INTO conversations (user_id, title, model, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         RETURNING {CONVERSATION_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(user_id)
        .bind(title)
        .bind(model)
        .bind(now)
        .fetch_one(db)
        .await?;
    conversation(&row)
}

/// The conversation if it exists *and* belongs to `user_id`.
pub async fn find_owned(
    db: &Db,
    user_id: i64,
    id: i64,
) -> Result<Option<ConversationRow>, sqlx::Error> {
    let sql =
        format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(conversation).transpose()
}

/// The user's conversations, most recently active first.
pub async fn list_for_user(
    db: &Db,
    user_id: i64,
    limit: i64,
) -> Result<Vec<ConversationRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
         ORDER BY updated_at DESC, id DESC LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(user_id)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(conversation).collect()
}

pub async fn rename(
    db: impl Exec<'_>,
    user_id: i64,
    id: i64,
    title: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE conversations SET title = $1 WHERE id = $2 AND user_id = $3")
        .bind(title)
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets (or with `None` clears) a conversation's own system prompt.
pub async fn set_system_prompt(
    db: &Db,
    user_id: i64,
    id: i64,
    prompt: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE conversations SET system_prompt = $1 WHERE id = $2 AND user_id = $3")
            .bind(prompt)
            .bind(id)
            .bind(user_id)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(db: &Db, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A turn starts: the conversation moves to the top of the list and keeps
/// the turn's model and thinking setting for the next one.
pub async fn touch(
    db: impl Exec<'_>,
    id: i64,
    model: &str,
    thinking_budget: Option<i64>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE conversations SET updated_at = $1, model = $2, thinking_budget = $3 WHERE id = $4",
    )
    .bind(now_ms)
    .bind(model)
    .bind(thinking_budget)
    .bind(id)
    .execute(db)
    .await
    .map(|_| ())
}

const MESSAGE_COLUMNS: &str =
    "id, role, content, model, status, error, paid_by, input_tokens, output_tokens, cost_micro_usd, \
     cache_read_tokens, saved_micro_usd, thinking, created_at";

pub async fn messages(db: &Db, conversation_id: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(conversation_id)
        .fetch_all(db)
        .await?;
    rows.iter().map(message).collect()
}

pub async fn insert_user_message(
    db: impl Exec<'_>,
    conversation_id: i64,
    content: &str,
    turn_key: Option<&str>,
    now_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, role, content, status, created_at, turn_key) \
         VALUES ($1, 'user', $2, 'complete', $3, $4) RETURNING id",
    )
    .bind(conversation_id)
    .bind(content)
    .bind(now_ms)
    .bind(turn_key)
    .fetch_one(db)
    .await
}

/// The user's messages stored under `turn_key` (conversation, id, text),
/// newest first, in the user's own conversations.
pub async fn find_turn(
    db: impl Exec<'_>,
    user_id: i64,
    turn_key: &str,
) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.conversation_id, m.id, m.content FROM messages m \
         JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.turn_key = $1 AND c.user_id = $2 AND m.role = 'user' \
         ORDER BY m.id DESC",
    )
    .bind(turn_key)
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// The id of the conversation's last message of the user's.
pub async fn last_user_message(
    db: impl Exec<'_>,
    conversation_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT MAX(id) FROM messages WHERE conversation_id = $1 AND role = 'user'")
        .bind(conversation_id)
        .fetch_one(db)
        .await
}

/// Starts an assistant reply in state `streaming`, recording who pays.
pub async fn insert_assistant_placeholder(
    db: impl Exec<'_>,
    conversation_id: i64,
    model: &str,
    paid_by: PaidBy,
    now_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, role, content, model, status, paid_by, created_at) \
         VALUES ($1, 'assistant', '', $2, 'streaming', $3, $4) RETURNING id",
    )
    .bind(conversation_id)
    .bind(model)
    .bind(paid_by.as_str())
    .bind(now_ms)
    .fetch_one(db)
    .await
}

/// Records how a reply ended: its text (partial when stopped or cut), status and usage.
pub async fn finish_assistant_message(
    db: &Db,
    id: i64,
    content: &str,
    status: MessageStatus,
    error: Option<&str>,
    thinking: Option<&str>,
    usage: ReplyUsage,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET content = $1, status = $2, error = $3, input_tokens = $4, \
         output_tokens = $5, cost_micro_usd = $6, cache_read_tokens = $7, saved_micro_usd = $8, \
         thinking = $9 WHERE id = $10",
    )
    .bind(content)
    .bind(status.as_str())
    .bind(error)
    .bind(usage.input_tokens)
    .bind(usage.output_tokens)
    .bind(usage.cost_micro_usd)
    .bind(usage.cache_read_tokens)
    .bind(usage.saved_micro_usd)
    .bind(thinking)
    .bind(id)
    .execute(db)
    .await
    .map(|_| ())
}

/// For "Edit": removes `message_id` and every message after it. The calls
/// those replies made stay in the ledger.
pub async fn delete_from(
    db: impl Exec<'_>,
    conversation_id: i64,
    message_id: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM messages WHERE conversation_id = $1 AND id >= $2")
        .bind(conversation_id)
        .bind(message_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// For "Regenerate": removes the assistant replies after the last user message.
pub async fn delete_trailing_assistant_messages(
    db: impl Exec<'_>,
    conversation_id: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM messages WHERE conversation_id = $1 AND role = 'assistant' AND id > \
         COALESCE((SELECT MAX(id) FROM messages WHERE conversation_id = $1 AND role = 'user'), 0)",
    )
    .bind(conversation_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
