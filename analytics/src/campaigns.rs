//! Campaign analytics over time: how many recipients reached each step (sent, delivered,
//! read, replied, clicked, failed, skipped) per hour or day, from the `campaign.*` events
//! (payload `campaignId`). Both stores answer alike: ClickHouse from `events` (the
//! campaign id read with `visitParamExtractString`, which 18.16 and current servers have),
//! the embedded store with `json_extract`.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{from_store_secs, store_secs};
use crate::{ClickHouseStore, EmbeddedStore};

/// Buckets of a campaign timeline (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    fn seconds(self) -> u32 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }
}

/// Events of one kind (`campaign.sent`, ...) in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineRow {
    pub period: DateTime<Utc>,
    pub kind: String,
    pub count: u64,
}

#[derive(Row, Deserialize)]
struct TimelineSql {
    period: u32,
    kind: String,
    count: u64,
}

impl ClickHouseStore {
    pub(crate) async fn campaign_timeline_impl(
        &self,
        project_id: Uuid,
        campaign_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> anyhow::Result<Vec<TimelineRow>> {
        // Whole-number bucketing (not toStartOfHour) so both stores cut alike.
        let rows = self
            .timed(
                "campaign timeline",
                self.client
                    .query(
                        "SELECT toUInt32(intDiv(toUInt32(occurred_at), ?) * ?) AS period, kind,
                                uniqExact(event_id) AS count
                         FROM events
                         WHERE project_id = toUUID(?) AND kind LIKE 'campaign.%'
                           AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
                           AND visitParamExtractString(payload, 'campaignId') = ?
                         GROUP BY period, kind
                         ORDER BY period, kind",
                    )
                    .bind(bucket.seconds())
                    .bind(bucket.seconds())
                    .bind(project_id.to_string())
                    .bind(store_secs(from))
                    .bind(store_secs(to))
                    .bind(campaign_id.to_string())
                    .fetch_all::<TimelineSql>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| TimelineRow {
                period: from_store_secs(r.period),
                kind: r.kind,
                count: r.count,
            })
            .collect())
    }
}

impl EmbeddedStore {
    pub(crate) async fn campaign_timeline_impl(
        &self,
        project_id: Uuid,
        campaign_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> anyhow::Result<Vec<TimelineRow>> {
        use sea_orm::sqlx::{self, Row};
        let seconds = i64::from(bucket.seconds());
        let rows = sqlx::query(
            "SELECT (occurred_at / ?) * ? AS period, kind, COUNT(*) AS count \
             FROM analytics_events \
             WHERE project_id = ? AND kind LIKE 'campaign.%' \
               AND occurred_at >= ? AND occurred_at < ? \
               AND json_extract(payload, '$.campaignId') = ? \
             GROUP BY period, kind \
             ORDER BY period, kind",
        )
        .bind(seconds)
        .bind(seconds)
        .bind(project_id.to_string())
        .bind(i64::from(store_secs(from)))
        .bind(i64::from(store_secs(to)))
        .bind(campaign_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let period: i64 = row.try_get("period")?;
                let count: i64 = row.try_get("count")?;
                Ok(TimelineRow {
                    period: from_store_secs(u32::try_from(period)?),
                    kind: row.try_get("kind")?,
                    count: u64::try_from(count)?,
                })
            })
            .collect()
    }
}
