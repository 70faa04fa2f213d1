//! `GET /admin/export.csv?from=…&to=…`: the ledger for a period as CSV,
//! streamed row by row from the database (never built in memory).

use axum::{
    body::Body,
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
    Extension,
};
use futures::StreamExt;
use sqlx::Row;

use super::period;
use crate::{
    error::AppError,
    model::admin::PeriodQuery,
    server::{auth::CurrentUser, state::AppState},
};

const HEADER: &str = "id,time_utc,user_email,key_source,model,input_tokens,output_tokens,\
cache_creation_tokens,cache_read_tokens,cost_usd,status,error_type,latency_ms,ttft_ms,request_id,conversation_id,token_id,\
saved_by_caching_usd\n";
/// Bytes gathered before a chunk goes out.
const CHUNK: usize = 64 * 1024;

pub async fn export_csv(
    State(state): State<AppState>,
    Extension(CurrentUser(user)): Extension<CurrentUser>,
    Query(query): Query<PeriodQuery>,
) -> Response {
    // The page guard already refused non-admins; checked again here.
    if !user.as_ref().is_some_and(|u| u.is_admin()) {
        return AppError::Forbidden.into_response();
    }
    let range = match period::resolve(&query, state.clock.now_ms()) {
        Ok(range) => range,
        Err(err) => return err.into_response(),
    };
    let filename = format!("keyward-usage-{}-to-{}.csv", range.from_day, range.to_day);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let mut rows = sqlx::query(
            "SELECT l.id, l.at, u.email, l.key_source, l.model, l.input_tokens, l.output_tokens, \
             l.cache_creation_tokens, l.cache_read_tokens, l.cost_micro_usd, l.saved_micro_usd, l.status, l.error_type, \
             l.latency_ms, l.ttft_ms, l.request_id, l.conversation_id, l.token_id \
             FROM usage_ledger l LEFT JOIN users u ON u.id = l.user_id \
             WHERE l.at >= $1 AND l.at < $2 ORDER BY l.at, l.id",
        )
        .bind(range.from_ms)
        .bind(range.until_ms)
        .fetch(&state.db);
        let mut buffer = String::from(HEADER);
        while let Some(row) = rows.next().await {
            let line = row.and_then(|row| csv_line(&row));
            match line {
                Ok(line) => buffer.push_str(&line),
                Err(err) => {
                    tracing::error!(error = %err, "CSV export stopped");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
            if buffer.len() >= CHUNK && tx.send(Ok(std::mem::take(&mut buffer).into())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(buffer.into())).await;
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn csv_line(row: &sqlx::any::AnyRow) -> Result<String, sqlx::Error> {
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let usd = |micro: i64| {
        let sign = if micro < 0 { "-" } else { "" };
        let micro = micro.unsigned_abs();
        format!("{sign}{}.{:06}", micro / 1_000_000, micro % 1_000_000)
    };
    let fields = [
        row.try_get::<i64, _>("id")?.to_string(),
        crate::server::db::format_time(row.try_get("at")?),
        row.try_get::<Option<String>, _>("email")?
            .unwrap_or_default(),
        row.try_get("key_source")?,
        row.try_get("model")?,
        row.try_get::<i64, _>("input_tokens")?.to_string(),
        row.try_get::<i64, _>("output_tokens")?.to_string(),
        row.try_get::<i64, _>("cache_creation_tokens")?.to_string(),
        row.try_get::<i64, _>("cache_read_tokens")?.to_string(),
        usd(row.try_get("cost_micro_usd")?),
        row.try_get("status")?,
        row.try_get::<Option<String>, _>("error_type")?
            .unwrap_or_default(),
        row.try_get::<i64, _>("latency_ms")?.to_string(),
        opt(row.try_get("ttft_ms")?),
        row.try_get::<Option<String>, _>("request_id")?
            .unwrap_or_default(),
        opt(row.try_get("conversation_id")?),
        opt(row.try_get("token_id")?),
        // Last: a column added later, so readers by position keep working.
        usd(row.try_get("saved_micro_usd")?),
    ];
    let mut line = fields
        .iter()
        .map(|f| escape(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    Ok(line)
}

/// Quotes a field when it holds a comma, quote or line break; a leading
/// `=`, `+`, `-`, `@`, tab or carriage return is prefixed so spreadsheets do
/// not run it as a formula (some strip a leading tab or CR, then read what
/// follows as one).
fn escape(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '@', '\t', '\r'])
        || (field.starts_with('-') && field.parse::<f64>().is_err())
    {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_defused() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a,b"), "\"a,b\"");
        assert_eq!(escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(escape("-12"), "-12");
        assert_eq!(escape("\t=1+1"), "'\t=1+1");
        assert_eq!(escape("\r=1+1"), "\"'\r=1+1\"");
    }
}
