//! The retention job: deletes the rows of every table of subject data
//! (`storage::subject_data`) older than its configured period, a bounded batch at a time
//! so writers are never blocked for long. The audit chain itself is append-only: its
//! hashes stay and keep verifying.
use std::{collections::BTreeMap, sync::Arc};

use crate::{
    error::Result,
    storage::{subject_data::SUBJECT_TABLES, subjects as stored},
    subjects::Subjects,
};

const BATCH: i64 = 1000;

pub async fn run(subjects: Arc<Subjects>) {
    let mut tick = tokio::time::interval(subjects.config.retention_interval());
    loop {
        tick.tick().await;
        match sweep(&subjects).await {
            Ok(s) if s.total() > 0 => {
                tracing::info!(removed = ?s.0, "retention removed expired rows")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; will retry"),
        }
    }
}

/// How many rows of each table one sweep deleted, by the registry's names
/// (`storage::subject_data`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept(pub BTreeMap<&'static str, u64>);

impl Swept {
    /// Rows deleted from the table the registry calls `name`.
    pub fn of(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// One sweep over every table of the registry.
pub async fn sweep(subjects: &Subjects) -> Result<Swept> {
    let now = subjects.trail.now();
    let db = subjects.db();
    let mut swept = Swept::default();
    for table in SUBJECT_TABLES {
        let before = now.days_before(table.retention_days(&subjects.config));
        let n = stored::expire(db, table, before, BATCH).await?;
        swept.0.insert(table.name, n);
    }
    crate::storage::subject_index::forget_empty_runs(db).await?;
    crate::consent::cache::prune(db).await?;
    Ok(swept)
}
