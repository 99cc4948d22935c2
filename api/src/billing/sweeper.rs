//! Ends subscription terms on time (expiry, or the next paid term), on every node; each
//! change is conditional, so two nodes never apply one twice.

use tokio_util::sync::CancellationToken;

use super::plans;
use crate::state::AppState;

pub async fn run(state: AppState, stop: CancellationToken) {
    let interval = state.settings.billing.sweep_interval;
    loop {
        match plans::sweep(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(subscriptions = n, "subscription terms ended"),
            Err(err) => tracing::warn!(error = %err, "the subscription sweep failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
