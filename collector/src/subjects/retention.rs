//! The retention job: deletes events, consent records, dead letters and audit data older than their
//! configured periods, a bounded batch at a time so writers are never blocked for long.
//! The audit chain itself is append-only: its hashes stay and keep verifying.
use std::sync::Arc;

use crate::{error::Result, AppState};

const BATCH: i64 = 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

pub async fn run(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.retention_interval());
    loop {
        tick.tick().await;
        match sweep(&state).await {
            Ok(s) if s != Swept::default() => tracing::info!(
                events = s.events,
                consent = s.consent,
                dead_letters = s.dead_letters,
                audit = s.audit,
                "retention removed expired rows"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; will retry"),
        }
    }
}

/// How many rows of each kind one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub events: u64,
    pub consent: u64,
    pub dead_letters: u64,
    pub audit: u64,
}

/// One sweep.
pub async fn sweep(state: &AppState) -> Result<Swept> {
    let now = state.clock.now_ms();
    let events_before = now - i64::from(state.config.event_retention_days) * DAY_MS;
    let consent_before = now - i64::from(state.config.consent_retention_days) * DAY_MS;
    let events = delete_batches(
        state,
        "DELETE FROM events WHERE (source_id, message_id) IN
         (SELECT source_id, message_id FROM events WHERE received_at_ms < $1 LIMIT $2)",
        events_before,
    )
    .await?;
    let consent = delete_batches(
        state,
        "DELETE FROM consent_records WHERE (source_id, consent_id) IN
         (SELECT source_id, consent_id FROM consent_records WHERE received_at_ms < $1 LIMIT $2)",
        consent_before,
    )
    .await?;
    let dead_before = now - i64::from(state.config.dead_letter_retention_days) * DAY_MS;
    let dead = delete_batches(
        state,
        "DELETE FROM dead_letters WHERE id IN
         (SELECT id FROM dead_letters WHERE received_at_ms < $1 LIMIT $2)",
        dead_before,
    )
    .await?;
    let audit_before = now - i64::from(state.config.audit_retention_days) * DAY_MS;
    let audit = delete_batches(
        state,
        "DELETE FROM audit_data WHERE seq IN
         (SELECT l.seq FROM audit_log l JOIN audit_data d ON d.seq = l.seq WHERE l.at_ms < $1 LIMIT $2)",
        audit_before,
    )
    .await?;
    crate::storage::subject_index::forget_empty_runs(&state.db).await?;
    crate::consent::cache::prune(&state.db).await?;
    Ok(Swept {
        events,
        consent,
        dead_letters: dead,
        audit,
    })
}

async fn delete_batches(state: &AppState, sql: &str, before: i64) -> Result<u64> {
    state
        .db
        .delete_in_batches(|| sqlx::query(sql).bind(before).bind(BATCH))
        .await
}
