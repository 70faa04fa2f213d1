//! Creating and editing plans: limits on the platform key, allowed models,
//! the `max_tokens` clamp, and whether server tools may run on the platform key.

use crate::{
    error::AppError,
    model::{admin::PlanView, caching::PromptCaching, models},
    server::{
        db::{
            self,
            audit::{self, AuditAction, AuditEntry},
            plans::{Plan, FREE},
            users::UserRow,
        },
        state::AppState,
    },
};

/// A plan as submitted by the admin form (empty limit = unlimited).
#[derive(Debug, Clone, Default)]
pub struct PlanForm {
    pub id: Option<i64>,
    pub name: String,
    pub requests_per_minute: String,
    pub requests_per_day: String,
    pub tokens_per_day: String,
    pub models: Vec<String>,
    pub max_tokens: String,
    /// The checkbox: present (any value) when ticked.
    pub allows_server_tools: bool,
    /// `5m`, `1h` or `off`; empty keeps what the plan has (five minutes
    /// for a new one).
    pub prompt_caching: String,
}

fn limit(field: &str, text: &str) -> Result<Option<i64>, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(|| {
            AppError::Validation(format!(
                "{field} must be a whole number of 0 or more, or empty for no limit."
            ))
        })
}

/// Checks a submitted plan and turns it into one to store.
pub fn validate(form: &PlanForm) -> Result<Plan, AppError> {
    let name = form.name.trim().to_lowercase();
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(AppError::Validation(
            "Plan names are 1 to 32 letters, digits, - or _.".into(),
        ));
    }
    let mut chosen: Vec<String> = Vec::new();
    for model in &form.models {
        let model = model.trim();
        if model.is_empty() {
            continue;
        }
        if !models::MODELS.iter().any(|m| m.id == model) {
            return Err(AppError::Validation(format!("Unknown model: {model}.")));
        }
        if !chosen.iter().any(|m| m == model) {
            chosen.push(model.to_owned());
        }
    }
    if chosen.is_empty() {
        return Err(AppError::Validation(
            "Pick at least one model for the plan.".into(),
        ));
    }
    let max_tokens = form
        .max_tokens
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (1..=128_000).contains(n))
        .ok_or_else(|| {
            AppError::Validation("The max_tokens clamp must be between 1 and 128000.".into())
        })?;
    let prompt_caching = match form.prompt_caching.trim() {
        "" => PromptCaching::default(),
        text => PromptCaching::parse(text)
            .ok_or_else(|| AppError::Validation("Prompt caching is 5m, 1h or off.".into()))?,
    };
    Ok(Plan {
        id: form.id.unwrap_or(0),
        name,
        requests_per_minute: limit("Requests per minute", &form.requests_per_minute)?,
        requests_per_day: limit("Requests per day", &form.requests_per_day)?,
        tokens_per_day: limit("Tokens per day", &form.tokens_per_day)?,
        models: chosen,
        max_tokens,
        allows_server_tools: form.allows_server_tools,
        prompt_caching,
    })
}

pub fn view(plan: Plan, users: i64) -> PlanView {
    PlanView {
        id: plan.id,
        name: plan.name,
        requests_per_minute: plan.requests_per_minute,
        requests_per_day: plan.requests_per_day,
        tokens_per_day: plan.tokens_per_day,
        models: plan.models,
        max_tokens: plan.max_tokens,
        allows_server_tools: plan.allows_server_tools,
        prompt_caching: plan.prompt_caching,
        users,
    }
}

pub async fn list(state: &AppState) -> Result<Vec<PlanView>, AppError> {
    let plans = db::plans::list_with_user_counts(&state.db).await?;
    Ok(plans
        .into_iter()
        .map(|(plan, users)| view(plan, users))
        .collect())
}

pub async fn save(
    state: &AppState,
    admin: &UserRow,
    form: &PlanForm,
    ip: &str,
) -> Result<PlanView, AppError> {
    let mut plan = validate(form)?;
    if let Some(id) = form.id {
        let existing = db::plans::by_id(&state.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        if form.prompt_caching.trim().is_empty() {
            plan.prompt_caching = existing.prompt_caching;
        }
        if existing.name == FREE && plan.name != FREE {
            return Err(AppError::Validation(
                "The free plan keeps its name: new accounts start on it.".into(),
            ));
        }
    }
    let now_ms = state.clock.now_ms();
    let mut tx = state.db.begin().await?;
    let saved = db::plans::save(&mut *tx, &plan, now_ms)
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(e) if e.is_unique_violation() => {
                AppError::Validation(format!("A plan named \"{}\" exists already.", plan.name))
            }
            _ => AppError::from(err),
        })?;
    let detail = format!(
        "{}: {}/min, {}/day, {} tokens/day, models {}, max_tokens {}, server tools {}, prompt caching {}",
        saved.name,
        shown(saved.requests_per_minute),
        shown(saved.requests_per_day),
        shown(saved.tokens_per_day),
        saved.models.join(" "),
        saved.max_tokens,
        if saved.allows_server_tools {
            "allowed"
        } else {
            "refused"
        },
        saved.prompt_caching.as_str()
    );
    let entry = AuditEntry {
        actor_user_id: Some(admin.id),
        subject_user_id: None,
        detail: &detail,
        ip: Some(ip),
    };
    audit::append(&mut *tx, AuditAction::PlanSaved, entry, now_ms).await?;
    state.commit_routing_change(tx).await?;
    Ok(view(saved, 0))
}

fn shown(limit: Option<i64>) -> String {
    limit.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> PlanForm {
        PlanForm {
            name: "Pro".into(),
            requests_per_day: "500".into(),
            models: vec!["claude-sonnet-4-6".into(), "claude-haiku-4-5".into()],
            max_tokens: "4096".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_plan_is_normalised() {
        let plan = validate(&form()).unwrap();
        assert_eq!(plan.name, "pro");
        assert_eq!(plan.requests_per_day, Some(500));
        assert_eq!(plan.requests_per_minute, None, "empty = unlimited");
        assert_eq!(plan.models.len(), 2);
        assert_eq!(
            plan.prompt_caching,
            PromptCaching::FiveMinutes,
            "empty = default"
        );
        let hour = validate(&PlanForm {
            prompt_caching: "1h".into(),
            ..form()
        })
        .unwrap();
        assert_eq!(hour.prompt_caching, PromptCaching::OneHour);
    }

    #[test]
    fn bad_plans_are_refused_with_the_reason() {
        let bad = |change: fn(&mut PlanForm)| {
            let mut f = form();
            change(&mut f);
            validate(&f).unwrap_err().to_string()
        };
        assert!(bad(|f| f.name = "no spaces".into()).contains("Plan names"));
        assert!(bad(|f| f.models = vec![]).contains("at least one model"));
        assert!(bad(|f| f.models = vec!["gpt-4".into()]).contains("Unknown model"));
        assert!(bad(|f| f.max_tokens = "0".into()).contains("max_tokens"));
        assert!(bad(|f| f.requests_per_day = "-1".into()).contains("Requests per day"));
        assert!(bad(|f| f.prompt_caching = "2h".into()).contains("Prompt caching"));
    }
}
