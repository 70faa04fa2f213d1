//! Assembling the dashboard and the users table from the roll-ups.

use crate::{
    model::admin::{AdminUserRow, Dashboard, DayPoint, UserDayRow, UserDetail, UsersPage},
    server::db::{
        self,
        dashboard::{self as queries, DayRange, UserQuery, UserSort, UserUsage},
        Db,
    },
};

pub const USERS_PER_PAGE: i64 = 25;

pub async fn load(db: &Db, range: &DayRange) -> Result<Dashboard, sqlx::Error> {
    let totals = queries::totals(db, range).await?;
    let days = queries::per_day(db, range).await?;
    let models = queries::top_models(db, range, 6).await?;
    let latency = queries::latency_percentiles(db, range).await?;
    Ok(Dashboard {
        from: range.from_day.clone(),
        to: range.to_day.clone(),
        totals,
        days: fill_days(range, days),
        models,
        latency_p50_ms: latency.map(|l| l.0),
        latency_p95_ms: latency.map(|l| l.1),
    })
}

/// Every day of the range, with zeros where nothing happened (charts need them).
fn fill_days(range: &DayRange, days: Vec<DayPoint>) -> Vec<DayPoint> {
    let mut days = days.into_iter().peekable();
    let mut out = Vec::new();
    let mut at = range.from_ms;
    while at < range.until_ms {
        let day = db::format_day(at);
        let point = match days.next_if(|d| d.day == day) {
            Some(point) => point,
            None => DayPoint {
                day,
                platform_requests: 0,
                user_requests: 0,
                platform_cost: 0,
                user_cost: 0,
                saved_by_caching: 0,
            },
        };
        out.push(point);
        at += crate::server::clock::DAY_MS;
    }
    out
}

fn row_view(user: UserUsage) -> AdminUserRow {
    AdminUserRow {
        id: user.id,
        email: user.email,
        is_admin: user.is_admin,
        disabled: user.disabled,
        plan: user.plan,
        key_status: user.key_status,
        platform_requests: user.platform_requests,
        user_requests: user.user_requests,
        cost: user.cost,
        last_active: user.last_active.map(db::format_time),
    }
}

pub fn parse_sort(sort: &str) -> (UserSort, bool) {
    let (name, descending) = match sort.strip_prefix('-') {
        Some(name) => (name, true),
        None => (sort, false),
    };
    let column = match name {
        "email" => UserSort::Email,
        "requests" => UserSort::Requests,
        "last_active" => UserSort::LastActive,
        _ => return (UserSort::Cost, true),
    };
    (column, descending)
}

pub async fn users_page(
    db: &Db,
    range: &DayRange,
    search: &str,
    sort: &str,
    page: i64,
) -> Result<UsersPage, sqlx::Error> {
    let (sort, descending) = parse_sort(sort);
    let page = page.max(1);
    let (users, total) = queries::users(
        db,
        &UserQuery {
            range,
            search,
            sort,
            descending,
            limit: USERS_PER_PAGE,
            offset: (page - 1) * USERS_PER_PAGE,
        },
    )
    .await?;
    Ok(UsersPage {
        users: users.into_iter().map(row_view).collect(),
        total,
        page,
        per_page: USERS_PER_PAGE,
    })
}

/// One user's page at `now_ms`, or `None` when there is no such user.
pub async fn user_detail(
    db: &Db,
    user_id: i64,
    range: &DayRange,
    now_ms: i64,
) -> Result<Option<UserDetail>, sqlx::Error> {
    let Some(user) = db::users::find_by_id(db, user_id).await? else {
        return Ok(None);
    };
    let (rows, _) = queries::users(
        db,
        &UserQuery {
            range,
            search: &user.email,
            sort: UserSort::Email,
            descending: false,
            limit: 50,
            offset: 0,
        },
    )
    .await?;
    let Some(row) = rows.into_iter().find(|r| r.id == user_id) else {
        return Ok(None);
    };
    let plan = db::plans::for_user(db, user_id).await?;
    let days = queries::user_days(db, user_id, range).await?;
    let recent = db::ledger::recent_for_user(db, user_id, 20).await?;
    let sessions = db::ledger::sessions_for_user(db, user_id, 20, now_ms).await?;
    Ok(Some(UserDetail {
        user: row_view(row),
        plan_id: plan.id,
        days: days
            .into_iter()
            .map(|d| UserDayRow {
                day: d.day,
                paid_by: d.paid_by,
                requests: d.requests,
                tokens: d.tokens,
                cost: d.cost,
            })
            .collect(),
        recent: recent.into_iter().map(|call| call.into_summary()).collect(),
        sessions: sessions
            .into_iter()
            .map(|session| session.into_summary())
            .collect(),
    }))
}
