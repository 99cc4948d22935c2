//! The usage report in ClickHouse, from an hourly pre-aggregate that stays exact under
//! re-sent batches.
//!
//! Grouping 10M raw rows by four string columns takes ClickHouse 18.16 about a second on
//! two cores, too close to the 1 s target. So `billing_usage_hourly` keeps, per
//! project, UTC hour, model, category, country and currency, the sums the report needs.
//!
//! Exactness: the aggregate is never incremented. After each insert, every (project, hour)
//! that the batch's charges and refunds fall in is recomputed from `billing_events` (which
//! holds each event once, see `insert_billing`) and written as a new snapshot of that hour,
//! whose `version` is the number of rows the snapshot counted. An hour's rows only ever
//! grow, so the snapshot with the highest version is the most complete one, whatever order
//! concurrent writers finish in (a later recomputation sees everything an earlier one saw);
//! queries take `argMax(…, version)` per group and ReplacingMergeTree(version) drops older
//! snapshots on merge. A batch re-sent after a crash recomputes its hours again: harmless.
//! A recomputation that failed makes the insert fail, so the shipper re-sends the batch and
//! the retry recomputes (even though its rows are already stored).
//!
//! A report window that does not start or end on a whole hour reads its partial hours from
//! `billing_events` directly.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ClickHouseStore;
use crate::billing::{self, BillingRecord, Granularity, UsageRow};
use crate::clickhouse_billing::CHARGE_KINDS;
use crate::store::{from_store_secs, store_secs};

/// Migration 3: the hourly snapshots (see the module's documentation).
pub(crate) const CREATE_BILLING_USAGE_HOURLY: &str =
    "CREATE TABLE IF NOT EXISTS billing_usage_hourly (
        project_id UUID,
        hour DateTime('UTC'),
        model String,
        category String,
        country String,
        currency String,
        version UInt64,
        messages Int64,
        billable_messages Int64,
        conversations Int64,
        billable_conversations Int64,
        amount_micros Int64
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(hour)
    ORDER BY (project_id, hour, model, category, country, currency)";

const HOUR: u32 = 3_600;

/// Hour ranges per recomputation query (an `OR` of ranges on the sorting key).
const RANGES_PER_QUERY: usize = 200;

/// One group of one hour, as recomputed from `billing_events`.
#[derive(Row, Deserialize)]
struct GroupSql {
    hour: u32,
    model: String,
    category: String,
    country: String,
    currency: String,
    rows: u64,
    messages: i64,
    billable_messages: i64,
    conversations: i64,
    billable_conversations: i64,
    amount_micros: i64,
}

#[derive(Row, Serialize)]
struct HourRow {
    #[serde(with = "clickhouse::serde::uuid")]
    project_id: Uuid,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    hour: DateTime<Utc>,
    model: String,
    category: String,
    country: String,
    currency: String,
    version: u64,
    messages: i64,
    billable_messages: i64,
    conversations: i64,
    billable_conversations: i64,
    amount_micros: i64,
}

#[derive(Row, Deserialize)]
struct UsageSql {
    #[serde(with = "clickhouse::serde::chrono::date")]
    period: NaiveDate,
    model: String,
    category: String,
    country: String,
    currency: String,
    messages: i64,
    billable_messages: i64,
    conversations: i64,
    billable_conversations: i64,
    amount_micros: i64,
}

/// Per project, the hours (as epoch seconds) that some charges or refunds fall in.
pub(crate) type TouchedHours = BTreeMap<Uuid, BTreeSet<u32>>;

/// The hours of `records`' charges and refunds: a batch's, whether its rows were stored just
/// now or by an earlier attempt.
pub(crate) fn touched_hours(records: &[BillingRecord]) -> TouchedHours {
    let mut touched = TouchedHours::new();
    for r in records {
        if r.kind == billing::CHARGED || r.kind == billing::REFUNDED {
            touched
                .entry(r.project_id)
                .or_default()
                .insert(r.occurred_at - r.occurred_at % HOUR);
        }
    }
    touched
}

/// Contiguous runs of hours as `[start, end)` second ranges.
fn hour_ranges(hours: &BTreeSet<u32>) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &hour in hours {
        let (start, end) = (u64::from(hour), u64::from(hour) + u64::from(HOUR));
        match ranges.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

impl ClickHouseStore {
    /// Recomputes the hourly snapshots of the `touched` hours (see [`touched_hours`]).
    pub(crate) async fn refresh_usage_hours(&self, touched: TouchedHours) -> anyhow::Result<()> {
        let mut snapshot = Vec::new();
        for (project_id, hours) in touched {
            for ranges in hour_ranges(&hours).chunks(RANGES_PER_QUERY) {
                let within = ranges
                    .iter()
                    .map(|(a, b)| {
                        format!(
                            "(occurred_at >= toDateTime({a}) AND occurred_at < toDateTime({b}))"
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let sql = format!(
                    "SELECT toUInt32(toStartOfHour(occurred_at)) AS h, model, category, country,
                            currency, count(),
                            toInt64(sum(sign)), toInt64(sum(sign * billable)),
                            toInt64(sum(sign * opened_conversation)),
                            toInt64(sum(sign * opened_conversation * billable)),
                            toInt64(sum(amount_micros))
                     FROM billing_events
                     WHERE project_id = toUUID(?) AND {CHARGE_KINDS} AND ({within})
                     GROUP BY h, model, category, country, currency"
                );
                // One read: the groups of an hour and its version come from the same parts.
                let groups = self
                    .timed(
                        "usage recomputation",
                        self.client
                            .query(&sql)
                            .bind(project_id.to_string())
                            .fetch_all::<GroupSql>(),
                    )
                    .await?;
                let mut versions: BTreeMap<u32, u64> = BTreeMap::new();
                for g in &groups {
                    *versions.entry(g.hour).or_default() += g.rows;
                }
                snapshot.extend(groups.into_iter().map(|g| HourRow {
                    project_id,
                    hour: from_store_secs(g.hour),
                    version: versions[&g.hour],
                    model: g.model,
                    category: g.category,
                    country: g.country,
                    currency: g.currency,
                    messages: g.messages,
                    billable_messages: g.billable_messages,
                    conversations: g.conversations,
                    billable_conversations: g.billable_conversations,
                    amount_micros: g.amount_micros,
                }));
            }
        }
        if snapshot.is_empty() {
            return Ok(());
        }
        self.timed("usage snapshot insert", async {
            let mut insert = self
                .client
                .insert::<HourRow>("billing_usage_hourly")
                .await?;
            for row in &snapshot {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await
    }

    /// The whole hours of the window from the snapshots, its partial hours (if any) from
    /// the raw rows, summed per period and group.
    pub(crate) async fn billing_usage(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
    ) -> anyhow::Result<Vec<UsageRow>> {
        let (from, to) = (u64::from(store_secs(from)), u64::from(store_secs(to)));
        let hour = u64::from(HOUR);
        let (mut whole_from, mut whole_to) = (from.div_ceil(hour) * hour, to / hour * hour);
        if whole_from >= whole_to {
            // No whole hour: all from the raw rows.
            (whole_from, whole_to) = (from, from);
        }
        let (hour_period, raw_period) = match granularity {
            Granularity::Day => ("toDate(hour)", "toDate(occurred_at)"),
            Granularity::Month => ("toStartOfMonth(hour)", "toStartOfMonth(occurred_at)"),
        };
        let sql = format!(
            "SELECT period, model, category, country, currency,
                    toInt64(sum(m)) AS messages_, toInt64(sum(b)), toInt64(sum(c)),
                    toInt64(sum(bc)), toInt64(sum(a)) AS amount_
             FROM (
                 SELECT {hour_period} AS period, model, category, country, currency,
                        argMax(messages, version) AS m,
                        argMax(billable_messages, version) AS b,
                        argMax(conversations, version) AS c,
                        argMax(billable_conversations, version) AS bc,
                        argMax(amount_micros, version) AS a
                 FROM billing_usage_hourly
                 WHERE project_id = toUUID(?)
                   AND hour >= toDateTime({whole_from}) AND hour < toDateTime({whole_to})
                 GROUP BY hour, model, category, country, currency
                 UNION ALL
                 SELECT {raw_period} AS period, model, category, country, currency,
                        toInt64(sum(sign)), toInt64(sum(sign * billable)),
                        toInt64(sum(sign * opened_conversation)),
                        toInt64(sum(sign * opened_conversation * billable)),
                        toInt64(sum(amount_micros))
                 FROM billing_events
                 WHERE project_id = toUUID(?) AND {CHARGE_KINDS}
                   AND ((occurred_at >= toDateTime({from}) AND occurred_at < toDateTime({whole_from}))
                     OR (occurred_at >= toDateTime({whole_to}) AND occurred_at < toDateTime({to})))
                 GROUP BY period, model, category, country, currency
             )
             GROUP BY period, model, category, country, currency
             HAVING messages_ != 0 OR amount_ != 0"
        );
        let rows = self
            .timed(
                "usage_report",
                self.client
                    .query(&sql)
                    .bind(project_id.to_string())
                    .bind(project_id.to_string())
                    .fetch_all::<UsageSql>(),
            )
            .await?;
        let mut rows: Vec<UsageRow> = rows
            .into_iter()
            .map(|r| UsageRow {
                period: r.period,
                model: r.model,
                category: r.category,
                country: r.country,
                currency: r.currency,
                messages: r.messages,
                billable_messages: r.billable_messages,
                free_messages: r.messages - r.billable_messages,
                conversations: r.conversations,
                billable_conversations: r.billable_conversations,
                free_conversations: r.conversations - r.billable_conversations,
                amount_micros: r.amount_micros,
            })
            .collect();
        billing::sort_usage(&mut rows);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_hours_become_contiguous_ranges() {
        let hours: BTreeSet<u32> = [0, 3_600, 7_200, 36_000, 43_200, 46_800].into();
        assert_eq!(
            hour_ranges(&hours),
            vec![(0, 10_800), (36_000, 39_600), (43_200, 50_400)]
        );
        assert!(hour_ranges(&BTreeSet::new()).is_empty());
    }
}
