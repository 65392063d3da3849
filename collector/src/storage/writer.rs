//! Group commit: requests hand their prepared rows to writer tasks, which take every job
//! waiting, write them in one transaction, commit once, then answer each request. A 2xx
//! still leaves only after its rows are committed; the commit (and its fsync) is shared.
//! If a group fails, its jobs are retried one by one so one bad job fails only itself.
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::{
    error::{Error, Result},
    ingest::WriteJob,
    pseudonym::Pseudonymizer,
    storage::subject_index,
    storage::{Backend, Db},
};

/// Most jobs committed together.
const MAX_GROUP: usize = 64;

/// How long without a request before the SQLite writer folds index runs together.
const IDLE: std::time::Duration = std::time::Duration::from_millis(100);

type Reply = oneshot::Sender<Result<(u32, u32)>>;

#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<(WriteJob, Reply)>,
}

impl Writer {
    /// Starts the writer tasks: one for SQLite (it has one writer anyway), a few for
    /// PostgreSQL.
    pub fn start(db: Db, keys: Pseudonymizer, checkpoint_every: u64) -> Writer {
        let (tx, rx) = mpsc::channel::<(WriteJob, Reply)>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let sqlite = db.backend == Backend::Sqlite;
        let writers = if sqlite { 1 } else { 4 };
        for _ in 0..writers {
            let (rx, db, keys) = (rx.clone(), db.clone(), keys.clone());
            tokio::spawn(async move {
                // SQLite: rows this writer wrote since it last brought the subject index
                // up to date. Not when idle: a quiet site would then make a run of the index
                // per event or two, and lookups seek every run.
                let mut unindexed = 0;
                // SQLite: whether the subject index may have runs to fold together, done
                // only once no request has come for IDLE (under load, never).
                let mut compact = sqlite;
                loop {
                    if sqlite
                        && unindexed >= subject_index::MERGE_EVERY_ROWS
                        && merge_index(&db).await
                    {
                        unindexed = 0;
                        compact = true;
                    }
                    let group = {
                        let mut rx = rx.lock().await;
                        let first = if compact {
                            match tokio::time::timeout(IDLE, rx.recv()).await {
                                Ok(first) => first,
                                Err(_) => {
                                    drop(rx);
                                    compact = compact_index(&db).await;
                                    continue;
                                }
                            }
                        } else {
                            rx.recv().await
                        };
                        let Some(first) = first else { return };
                        let mut group = vec![first];
                        while group.len() < MAX_GROUP {
                            match rx.try_recv() {
                                Ok(job) => group.push(job),
                                Err(_) => break,
                            }
                        }
                        group
                    };
                    let rows = write_group(&db, &keys, checkpoint_every, group).await;
                    unindexed = unindexed.saturating_add(rows);
                }
            });
        }
        Writer { queue: tx }
    }

    /// Requests waiting for a writer.
    pub fn depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Writes one request's rows; returns (accepted, duplicates) once committed.
    pub async fn submit(&self, job: WriteJob) -> Result<(u32, u32)> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((job, reply))
            .await
            .map_err(|_| Error::Internal("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("writer dropped a job".into()))?
    }
}

async fn write_all(
    db: &Db,
    keys: &Pseudonymizer,
    every: u64,
    jobs: &mut [&mut WriteJob],
) -> Result<Vec<(u32, u32)>> {
    let mut w = db.write().await?;
    if jobs.iter().any(|j| j.has_consent()) {
        w.lock_audit_chain().await?;
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        out.push(job.write(&mut w, keys, every).await?);
    }
    w.commit().await?;
    Ok(out)
}

/// Writes a group and answers its requests; returns how many events it stored.
async fn write_group(
    db: &Db,
    keys: &Pseudonymizer,
    every: u64,
    mut group: Vec<(WriteJob, Reply)>,
) -> u64 {
    let mut stored = 0;
    let mut answer = |reply: Reply, result: Result<(u32, u32)>| {
        if let Ok((accepted, _)) = &result {
            stored += u64::from(*accepted);
        }
        let _ = reply.send(result);
    };
    let mut jobs: Vec<&mut WriteJob> = group.iter_mut().map(|(j, _)| j).collect();
    let first_try = write_all(db, keys, every, &mut jobs).await;
    match first_try {
        Ok(results) => {
            for ((_, reply), result) in group.into_iter().zip(results) {
                answer(reply, Ok(result));
            }
        }
        Err(e) if group.len() == 1 => {
            let (_, reply) = group.into_iter().next().expect("one job");
            answer(reply, Err(e));
        }
        Err(_) => {
            for (mut job, reply) in group {
                let result = write_all(db, keys, every, &mut [&mut job])
                    .await
                    .map(|mut r| r.remove(0));
                answer(reply, result);
            }
        }
    }
    stored
}

/// Brings the SQLite subject index up to date; false (and a warning) if it could not,
/// in which case lookups keep finding the rows through the tail scan.
async fn merge_index(db: &Db) -> bool {
    upkeep(
        subject_index::merge(db).await,
        "cannot update the subject index; will retry",
    )
    .is_some()
}

/// Folds one run of the SQLite subject index into another; false when there is nothing
/// left to fold, or (with a warning) when it could not: then again after the next merge.
async fn compact_index(db: &Db) -> bool {
    upkeep(
        subject_index::compact_step(db).await,
        "cannot compact the subject index",
    )
    .unwrap_or(false)
}

/// The result of upkeep the writer does besides requests, a warning when it failed.
fn upkeep<T>(result: Result<T>, warning: &str) -> Option<T> {
    result
        .map_err(|e| tracing::warn!(error = %e, "{warning}"))
        .ok()
}
