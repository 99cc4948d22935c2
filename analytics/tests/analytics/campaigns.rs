//! The campaign timeline answers the same on ClickHouse and on the embedded store, counts
//! a re-sent batch once, and keeps campaigns and projects apart.

use chrono::{DateTime, Duration, TimeZone, Utc};
use parley_analytics::{AnalyticsStore, EmbeddedStore, Event, campaigns::Bucket};
use serde_json::json;
use uuid::Uuid;

use crate::common::ChDb;

fn event(project: Uuid, campaign: Uuid, kind: &str, at: DateTime<Utc>) -> Event {
    let mut e = Event::new(
        project,
        kind,
        None,
        json!({ "campaignId": campaign, "contactId": Uuid::new_v4() }),
    );
    e.occurred_at = at;
    e
}

#[tokio::test]
async fn a_campaign_s_timeline_is_the_same_on_both_stores() {
    let project = Uuid::new_v4();
    let other_project = Uuid::new_v4();
    let campaign = Uuid::new_v4();
    let other_campaign = Uuid::new_v4();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 10, 15, 0).unwrap();
    let mut events = Vec::new();
    // 10:00–11:00: 3 sent, 2 delivered; 11:00–12:00: 1 read, 1 failed; next day: 1 replied.
    for minutes in [0, 5, 20] {
        events.push(event(
            project,
            campaign,
            "campaign.sent",
            t0 + Duration::minutes(minutes),
        ));
    }
    for minutes in [10, 30] {
        events.push(event(
            project,
            campaign,
            "campaign.delivered",
            t0 + Duration::minutes(minutes),
        ));
    }
    events.push(event(
        project,
        campaign,
        "campaign.read",
        t0 + Duration::minutes(50),
    ));
    events.push(event(
        project,
        campaign,
        "campaign.failed",
        t0 + Duration::minutes(55),
    ));
    events.push(event(
        project,
        campaign,
        "campaign.replied",
        t0 + Duration::hours(25),
    ));
    // Not this campaign's, not this project's, not a campaign event.
    events.push(event(project, other_campaign, "campaign.sent", t0));
    events.push(event(other_project, campaign, "campaign.sent", t0));
    events.push(event(project, campaign, "message.outbound", t0));

    let ch = ChDb::new().await;
    let embedded = EmbeddedStore::in_memory().await.unwrap();
    embedded.migrate().await.unwrap();
    for store in [ch.store.as_ref() as &dyn AnalyticsStore, &embedded] {
        store.insert(&events).await.unwrap();
        // A batch sent again after a crash counts once.
        store.insert(&events[..3]).await.unwrap();
    }
    let from = t0 - Duration::days(1);
    let to = t0 + Duration::days(2);
    let hourly = ch
        .store
        .campaign_timeline(project, campaign, from, to, Bucket::Hour)
        .await
        .unwrap();
    let at = |h: u32| Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap();
    let rows: Vec<(DateTime<Utc>, &str, u64)> = hourly
        .iter()
        .map(|r| (r.period, r.kind.as_str(), r.count))
        .collect();
    assert_eq!(
        rows,
        vec![
            (at(10), "campaign.delivered", 2),
            (at(10), "campaign.sent", 3),
            (at(11), "campaign.failed", 1),
            (at(11), "campaign.read", 1),
            (
                Utc.with_ymd_and_hms(2026, 3, 2, 11, 0, 0).unwrap(),
                "campaign.replied",
                1
            ),
        ]
    );
    assert_eq!(
        embedded
            .campaign_timeline(project, campaign, from, to, Bucket::Hour)
            .await
            .unwrap(),
        hourly
    );
    let daily_ch = ch
        .store
        .campaign_timeline(project, campaign, from, to, Bucket::Day)
        .await
        .unwrap();
    let daily_embedded = embedded
        .campaign_timeline(project, campaign, from, to, Bucket::Day)
        .await
        .unwrap();
    assert_eq!(daily_ch, daily_embedded);
    assert_eq!(daily_ch.len(), 5);
    assert_eq!(
        daily_ch[0].period,
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
    );
    ch.drop().await;
}
