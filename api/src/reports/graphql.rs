use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

use crate::{
    auth::{RoleGuard, guard::REPORT_READERS},
    errors::AppError,
    graphql::{app_state, scope},
};

/// How many events of one kind the project had on one day (UTC).
#[derive(SimpleObject)]
pub struct ActivityCount {
    pub day: NaiveDate,
    pub kind: String,
    pub count: u64,
}

/// The longest range one report may span.
const MAX_RANGE_DAYS: i64 = 400;

#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// The project's recorded events per day and kind in `[from, to)`, from the analytics
    /// store (events reach it within seconds).
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn activity_report(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ActivityCount>> {
        if to <= from || (to - from).num_days() > MAX_RANGE_DAYS {
            return Err(AppError::bad_input(
                "to",
                format!("to must follow from, at most {MAX_RANGE_DAYS} days later"),
            )
            .into());
        }
        let scope = scope(ctx)?;
        let counts = app_state(ctx)
            .analytics
            .event_counts(scope.project_id, from, to)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(counts
            .into_iter()
            .map(|c| ActivityCount {
                day: c.day,
                kind: c.kind,
                count: c.count,
            })
            .collect())
    }
}
