//! The audit log page: admin actions and security events, newest first.

use crate::{
    model::admin::{AuditPage, AuditRow},
    server::db::{self, audit::AuditAction, Db},
};

const PER_PAGE: i64 = 50;

pub async fn page(db: &Db, action: &str, email: &str, page: i64) -> Result<AuditPage, sqlx::Error> {
    let page = page.max(1);
    let action = if AuditAction::ALL.iter().any(|a| a.as_str() == action) {
        action
    } else {
        ""
    };
    let mut rows = db::audit::list(
        db,
        action,
        email.trim(),
        PER_PAGE + 1,
        (page - 1) * PER_PAGE,
    )
    .await?;
    let has_more = rows.len() as i64 > PER_PAGE;
    rows.truncate(PER_PAGE as usize);
    Ok(AuditPage {
        entries: rows
            .into_iter()
            .map(|r| AuditRow {
                at: db::format_time(r.at),
                action: r.action,
                actor: r.actor,
                subject: r.subject,
                detail: r.detail,
                ip: r.ip,
            })
            .collect(),
        page,
        has_more,
        actions: AuditAction::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
    })
}
