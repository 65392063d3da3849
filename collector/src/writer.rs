//! Group commit: requests hand their prepared rows to writer tasks, which take every job
//! waiting, write them in one transaction, commit once, then answer each request. A 2xx
//! still leaves only after its rows are committed; the commit (and its fsync) is shared.
//! If a group fails, its jobs are retried one by one so one bad job fails only itself.
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::{
    db::{Backend, Db},
    error::{Error, Result},
    ingest::WriteJob,
    pseudonym::Pseudonymizer,
};

/// Most jobs committed together.
const MAX_GROUP: usize = 64;

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
        let writers = if db.backend == Backend::Sqlite { 1 } else { 4 };
        for _ in 0..writers {
            let (rx, db, keys) = (rx.clone(), db.clone(), keys.clone());
            tokio::spawn(async move {
                loop {
                    let group = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut group = vec![first];
                        while group.len() < MAX_GROUP {
                            match rx.try_recv() {
                                Ok(job) => group.push(job),
                                Err(_) => break,
                            }
                        }
                        group
                    };
                    write_group(&db, &keys, checkpoint_every, group).await;
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
    jobs: &[&WriteJob],
) -> Result<Vec<(u32, u32)>> {
    let mut w = db.write().await?;
    if jobs.iter().any(|j| j.has_consent()) {
        w.lock_audit_chain().await?;
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(job.write(&mut w, keys, every).await?);
    }
    w.commit().await?;
    Ok(out)
}

async fn write_group(db: &Db, keys: &Pseudonymizer, every: u64, group: Vec<(WriteJob, Reply)>) {
    let jobs: Vec<&WriteJob> = group.iter().map(|(j, _)| j).collect();
    match write_all(db, keys, every, &jobs).await {
        Ok(results) => {
            for ((_, reply), result) in group.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) if group.len() == 1 => {
            let (_, reply) = group.into_iter().next().expect("one job");
            let _ = reply.send(Err(e));
        }
        Err(_) => {
            for (job, reply) in group {
                let result = write_all(db, keys, every, &[&job])
                    .await
                    .map(|mut r| r.remove(0));
                let _ = reply.send(result);
            }
        }
    }
}
