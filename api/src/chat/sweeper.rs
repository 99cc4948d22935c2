//! Moves chats to History on time: sleeps until the next chat is due (or the sweep
//! interval, whichever is sooner), so no timer per chat and nothing to lose on restart.

use tokio_util::sync::CancellationToken;

use super::service;
use crate::state::AppState;

pub async fn run(state: AppState, stop: CancellationToken) {
    let interval = state.settings.chat_sweep_interval;
    loop {
        match service::sweep_history(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(chats = n, "chats moved to History"),
            Err(err) => tracing::warn!(error = %err, "the History sweep failed"),
        }
        let now = state.settings.clock.now();
        let wait = match service::next_history_at(&state).await {
            Ok(Some(due)) => (due - now).to_std().unwrap_or_default().min(interval),
            _ => interval,
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait.max(std::time::Duration::from_millis(10))) => {}
        }
    }
}
