//! Changing a user's plan, role or status. There is always at least one
//! enabled admin: the last one can be neither demoted nor disabled.

use crate::{
    error::AppError,
    server::{
        db::{
            self,
            audit::{self, AuditAction, AuditEntry},
            users::UserRow,
        },
        state::AppState,
    },
};

const LAST_ADMIN: &str =
    "This is the last enabled admin account. Make another account an admin first.";

async fn target(state: &AppState, user_id: i64) -> Result<UserRow, AppError> {
    db::users::find_by_id(&state.db, user_id)
        .await?
        .ok_or(AppError::NotFound)
}

async fn audit_change(
    db: impl db::Exec<'_>,
    action: AuditAction,
    admin: &UserRow,
    subject: i64,
    detail: &str,
    ip: &str,
    now_ms: i64,
) -> Result<(), AppError> {
    let entry = AuditEntry {
        actor_user_id: Some(admin.id),
        subject_user_id: Some(subject),
        detail,
        ip: Some(ip),
    };
    Ok(audit::append(db, action, entry, now_ms).await?)
}

pub async fn set_plan(
    state: &AppState,
    admin: &UserRow,
    user_id: i64,
    plan_id: i64,
    ip: &str,
) -> Result<(), AppError> {
    let user = target(state, user_id).await?;
    let plan = db::plans::by_id(&state.db, plan_id)
        .await?
        .ok_or_else(|| AppError::Validation("That plan does not exist.".into()))?;
    let mut tx = state.db.begin().await?;
    db::users::set_plan(&mut *tx, user.id, plan.id).await?;
    let action = AuditAction::PlanChanged;
    audit_change(
        &mut *tx,
        action,
        admin,
        user.id,
        &plan.name,
        ip,
        state.clock.now_ms(),
    )
    .await?;
    state.commit_routing_change(tx).await?;
    Ok(())
}

pub async fn set_role(
    state: &AppState,
    admin: &UserRow,
    user_id: i64,
    make_admin: bool,
    ip: &str,
) -> Result<(), AppError> {
    let user = target(state, user_id).await?;
    let mut tx = state.db.begin().await?;
    let changed = db::users::set_role_keeping_an_admin(&mut tx, user.id, make_admin).await?;
    if !changed {
        return Err(AppError::Validation(LAST_ADMIN.into()));
    }
    // A new privilege level starts with a new session: the user's
    // existing sessions end (they sign in again), so no session id that
    // was issued, or seen, before the change carries the new role.
    if user.id != admin.id {
        db::sessions::delete_all_for_user(&mut *tx, user.id, None).await?;
    }
    let detail = if make_admin { "admin" } else { "user" };
    audit_change(
        &mut *tx,
        AuditAction::RoleChanged,
        admin,
        user.id,
        detail,
        ip,
        state.clock.now_ms(),
    )
    .await?;
    state.commit_routing_change(tx).await?;
    Ok(())
}

/// Disabling ends the user's sessions and blocks their gateway tokens at once.
pub async fn set_disabled(
    state: &AppState,
    admin: &UserRow,
    user_id: i64,
    disabled: bool,
    ip: &str,
) -> Result<(), AppError> {
    let user = target(state, user_id).await?;
    if disabled && user.id == admin.id {
        return Err(AppError::Validation(
            "You cannot disable your own account.".into(),
        ));
    }
    let mut tx = state.db.begin().await?;
    let changed = db::users::set_disabled_keeping_an_admin(&mut tx, user.id, disabled).await?;
    if !changed {
        return Err(AppError::Validation(LAST_ADMIN.into()));
    }
    if disabled {
        db::sessions::delete_all_for_user(&mut *tx, user.id, None).await?;
    }
    let action = if disabled {
        AuditAction::UserDisabled
    } else {
        AuditAction::UserEnabled
    };
    audit_change(
        &mut *tx,
        action,
        admin,
        user.id,
        "admin",
        ip,
        state.clock.now_ms(),
    )
    .await?;
    state.commit_routing_change(tx).await?;
    if disabled {
        // Their chats and gateway streams stop now, not at their end.
        state.cuts.cut_user(user.id);
    }
    Ok(())
}
