//! Group commit: requests hand their prepared rows to writer tasks, which take every job
//! waiting, write them in one transaction, commit once, then answer each request. A 2xx
//! still leaves only after its rows are committed; the commit (and its fsync) is shared.
//! If a group fails, its jobs are retried one by one so one bad job fails only itself.
//! What a job writes is its own business ([`Job`]; ingest's is `crate::ingest::WriteJob`).
use std::{future::Future, sync::Arc};

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::{
    error::{Error, Result},
    storage::subject_index,
    storage::{Backend, Db, WriteTx},
};

/// Something the writer commits: rows prepared by a request, written inside a shared
/// transaction.
pub trait Job: Send + 'static {
    /// What every job of this kind writes with (shared by the writer tasks).
    type Context: Send + Sync + 'static;
    /// What the request is answered once the rows are committed.
    type Output: Send + 'static;

    /// Whether writing appends to the audit chain (the group then takes its lock first,
    /// so that concurrent groups cannot deadlock taking it in the middle).
    fn appends_to_audit_chain(&self) -> bool;

    /// Writes the rows inside `w`; may be called again (in a transaction of its own) if
    /// the group's transaction failed.
    fn write<'a>(
        &'a mut self,
        w: &'a mut WriteTx,
        context: &'a Self::Context,
    ) -> impl Future<Output = Result<Self::Output>> + Send + 'a;

    /// How many rows the job stored (counted for the SQLite subject index).
    fn rows(output: &Self::Output) -> u64;
}

/// Most jobs committed together.
const MAX_GROUP: usize = 64;

/// How long without a request before the SQLite writer folds index runs together.
const IDLE: std::time::Duration = std::time::Duration::from_millis(100);

type Reply<J> = oneshot::Sender<Result<<J as Job>::Output>>;

#[derive(Debug)]
pub struct Writer<J: Job> {
    queue: mpsc::Sender<(J, Reply<J>)>,
}

impl<J: Job> Clone for Writer<J> {
    fn clone(&self) -> Self {
        Writer {
            queue: self.queue.clone(),
        }
    }
}

impl<J: Job> Writer<J> {
    /// Starts the writer tasks: one for SQLite (it has one writer anyway), a few for
    /// PostgreSQL.
    pub fn start(db: Db, context: J::Context) -> Writer<J> {
        let (tx, rx) = mpsc::channel::<(J, Reply<J>)>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let context = Arc::new(context);
        let sqlite = db.backend == Backend::Sqlite;
        let writers = if sqlite { 1 } else { 4 };
        for _ in 0..writers {
            let (rx, db, context) = (rx.clone(), db.clone(), context.clone());
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
                    let rows = write_group(&db, context.as_ref(), group).await;
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
    pub async fn submit(&self, job: J) -> Result<J::Output> {
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

async fn write_all<J: Job>(
    db: &Db,
    context: &J::Context,
    jobs: &mut [&mut J],
) -> Result<Vec<J::Output>> {
    let mut w = db.write().await?;
    if jobs.iter().any(|j| j.appends_to_audit_chain()) {
        w.lock_audit_chain().await?;
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        out.push(job.write(&mut w, context).await?);
    }
    w.commit().await?;
    Ok(out)
}

/// Writes a group and answers its requests; returns how many rows it stored.
async fn write_group<J: Job>(db: &Db, context: &J::Context, mut group: Vec<(J, Reply<J>)>) -> u64 {
    let mut stored = 0;
    let mut answer = |reply: Reply<J>, result: Result<J::Output>| {
        if let Ok(output) = &result {
            stored += J::rows(output);
        }
        let _ = reply.send(result);
    };
    let mut jobs: Vec<&mut J> = group.iter_mut().map(|(j, _)| j).collect();
    let first_try = write_all(db, context, &mut jobs).await;
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
                let result = write_all(db, context, &mut [&mut job])
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
