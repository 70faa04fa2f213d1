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
    state: &AppState,
    action: AuditAction,
    admin: &UserRow,
    subject: i64,
    detail: &str,
    ip: &str,
) -> Result<(), AppError> {
    let entry = AuditEntry {
        actor_user_id: Some(admin.id),
        subject_user_id: Some(subject),
        detail,
        ip: Some(ip),
    };
    Ok(audit::append(&state.db, action, entry).await?)
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
    db::users::set_plan(&state.db, user.id, plan.id).await?;
    state.principals.invalidate();
    audit_change(
        state,
        AuditAction::PlanChanged,
        admin,
        user.id,
        &plan.name,
        ip,
    )
    .await
}

pub async fn set_role(
    state: &AppState,
    admin: &UserRow,
    user_id: i64,
    make_admin: bool,
    ip: &str,
) -> Result<(), AppError> {
    let user = target(state, user_id).await?;
    let changed = db::users::set_role_keeping_an_admin(&state.db, user.id, make_admin).await?;
    if !changed {
        return Err(AppError::Validation(LAST_ADMIN.into()));
    }
    // A new privilege level starts with a new session: the user's
    // existing sessions end (they sign in again), so no session id that
    // was issued, or seen, before the change carries the new role.
    if user.id != admin.id {
        db::sessions::delete_all_for_user(&state.db, user.id, None).await?;
    }
    state.principals.invalidate();
    let detail = if make_admin { "admin" } else { "user" };
    audit_change(state, AuditAction::RoleChanged, admin, user.id, detail, ip).await
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
    let changed = db::users::set_disabled_keeping_an_admin(&state.db, user.id, disabled).await?;
    if !changed {
        return Err(AppError::Validation(LAST_ADMIN.into()));
    }
    if disabled {
        db::sessions::delete_all_for_user(&state.db, user.id, None).await?;
        // Their chats and gateway streams stop now, not at their end.
        state.cuts.cut_user(user.id);
    }
    state.principals.invalidate();
    let action = if disabled {
        AuditAction::UserDisabled
    } else {
        AuditAction::UserEnabled
    };
    audit_change(state, action, admin, user.id, "admin", ip).await
}
