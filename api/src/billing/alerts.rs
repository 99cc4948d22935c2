//! Live wallet events: every balance change, and an alert when the balance falls below the
//! project's threshold. Published after the change has committed.

use parley_entity::wallet_entry;
use serde_json::json;

use super::{pricing::format_micros, wallet};
use crate::{events, state::AppState};

pub const WALLET_CHANGED: &str = "wallet.changed";
pub const WALLET_LOW: &str = "wallet.low_balance";

/// Announces committed ledger entries.
pub async fn publish(state: &AppState, entries: &[wallet_entry::Model]) {
    // The wallet is read once per project (a campaign announces many entries at once).
    let mut read: Option<parley_entity::wallet::Model> = None;
    for entry in entries {
        let wallet = match read.take().filter(|w| w.project_id == entry.project_id) {
            Some(wallet) => wallet,
            None => match wallet::find(&state.db, entry.project_id).await {
                Ok(wallet) => wallet,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the wallet to announce a change");
                    continue;
                }
            },
        };
        let payload = json!({
            "seq": entry.seq,
            "kind": entry.kind,
            "amount": format_micros(entry.amount_micros),
            "balance": format_micros(entry.balance_after_micros),
            "currency": wallet.currency,
            "lowBalance": format_micros(wallet.low_balance_micros),
            "at": entry.created_at,
        });
        events::publish(state, entry.project_id, WALLET_CHANGED, payload.clone()).await;
        let before = entry.balance_after_micros - entry.amount_micros;
        if crossed_below(
            before,
            entry.balance_after_micros,
            wallet.low_balance_micros,
        ) {
            events::publish(state, entry.project_id, WALLET_LOW, payload).await;
        }
        read = Some(wallet);
    }
}

/// The alert fires once, when a change takes the balance from at or above the threshold
/// to below it (not again for every charge while it stays low).
pub fn crossed_below(before: i64, after: i64, threshold: i64) -> bool {
    before >= threshold && after < threshold
}

#[cfg(test)]
mod tests {
    use super::crossed_below;

    #[test]
    fn the_alert_fires_when_the_threshold_is_crossed_downwards_only() {
        assert!(crossed_below(150, 90, 100));
        assert!(crossed_below(100, 99, 100));
        assert!(!crossed_below(90, 80, 100), "already low");
        assert!(!crossed_below(90, 150, 100), "a top-up");
        assert!(!crossed_below(300, 200, 100), "still above");
    }
}
