//! The statements on `audience_members` and `audience_changes` (`crate::segments`
//! decides who is in; the audiences themselves are in `definitions`).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId, UnixMs},
    storage::{delete_of_subject, numbered, Db, WriteTx},
};

/// A member of an audience at a source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub audience: String,
    pub source: SourceId,
    pub subject: Pseudonym,
    pub since_ms: i64,
}

/// An entry into (`entered`) or exit from an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub source: SourceId,
    pub subject: Pseudonym,
    pub at_ms: i64,
    pub entered: bool,
}

/// Rows per statement.
const ROWS: usize = 100;

fn member_of(r: &sqlx::any::AnyRow) -> Result<Member> {
    Ok(Member {
        audience: r.try_get(0)?,
        source: SourceId::from_stored(r.try_get(1)?),
        subject: Pseudonym::from_stored(r.try_get(2)?),
        since_ms: r.try_get(3)?,
    })
}

/// Deletes an audience's members and changes (with the audience).
pub async fn delete_members(w: &mut WriteTx, audience: &str) -> Result<()> {
    for table in ["audience_members", "audience_changes"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE audience = $1"))
            .bind(audience)
            .execute(&mut *w.tx)
            .await?;
    }
    Ok(())
}

/// The memberships of these subjects (at any source), read in the write transaction.
pub async fn members_of(w: &mut WriteTx, subjects: &[&Pseudonym]) -> Result<Vec<Member>> {
    let mut out = Vec::new();
    for chunk in subjects.chunks(ROWS) {
        let sql = format!(
            "SELECT audience, source_id, subject, since_ms FROM audience_members
             WHERE subject IN ({})",
            numbered(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.as_str());
        }
        for r in q.fetch_all(&mut *w.tx).await? {
            out.push(member_of(&r)?);
        }
    }
    Ok(out)
}

/// Every membership of these audiences, read in the write transaction.
pub async fn members_in(w: &mut WriteTx, audiences: &[&str]) -> Result<Vec<Member>> {
    if audiences.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT audience, source_id, subject, since_ms FROM audience_members
         WHERE audience IN ({})",
        numbered(1, audiences.len())
    );
    let mut q = sqlx::query(&sql);
    for a in audiences {
        q = q.bind(*a);
    }
    q.fetch_all(&mut *w.tx)
        .await?
        .iter()
        .map(member_of)
        .collect()
}

/// Adds members (since `now`) and records their entries.
pub async fn enter(w: &mut WriteTx, members: &[Member], now: UnixMs) -> Result<()> {
    for chunk in members.chunks(ROWS) {
        let mut q_sql = String::from(
            "INSERT INTO audience_members (audience, source_id, subject, since_ms, received_at_ms) VALUES ",
        );
        q_sql.push_str(&values(chunk.len(), 5));
        let mut q = sqlx::query(&q_sql);
        for m in chunk {
            q = q
                .bind(m.audience.as_str())
                .bind(m.source.as_str())
                .bind(m.subject.as_str())
                .bind(now.millis())
                .bind(now.millis());
        }
        q.execute(&mut *w.tx).await?;
    }
    record(w, members, true, now).await
}

/// Removes members and records their exits.
pub async fn exit(w: &mut WriteTx, members: &[Member], now: UnixMs) -> Result<()> {
    for m in members {
        sqlx::query(
            "DELETE FROM audience_members WHERE audience = $1 AND source_id = $2 AND subject = $3",
        )
        .bind(m.audience.as_str())
        .bind(m.source.as_str())
        .bind(m.subject.as_str())
        .execute(&mut *w.tx)
        .await?;
    }
    record(w, members, false, now).await
}

async fn record(w: &mut WriteTx, members: &[Member], entered: bool, now: UnixMs) -> Result<()> {
    const COLUMNS: [&str; 6] = [
        "audience",
        "source_id",
        "subject",
        "at_ms",
        "entered",
        "received_at_ms",
    ];
    for chunk in members.chunks(ROWS) {
        let sql = w
            .backend()
            .insert_skipping_duplicates("audience_changes", &COLUMNS, chunk.len());
        let mut q = sqlx::query(&sql);
        for m in chunk {
            q = q
                .bind(m.audience.as_str())
                .bind(m.source.as_str())
                .bind(m.subject.as_str())
                .bind(now.millis())
                .bind(i64::from(entered))
                .bind(now.millis());
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// `($1,$2,…),(…)…`: `rows` tuples of `width` numbered parameters.
fn values(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", numbered(1 + r * width, width)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Which of `subjects` have memberships or membership changes.
pub async fn named(
    w: &mut WriteTx,
    subjects: &[&Pseudonym],
) -> Result<std::collections::HashSet<String>> {
    let mut found = super::subjects_in(w, "audience_members", &["subject"], subjects).await?;
    found.extend(super::subjects_in(w, "audience_changes", &["subject"], subjects).await?);
    Ok(found)
}

/// Deletes the memberships and changes of a subject at the given sources.
pub async fn forget_at(w: &mut WriteTx, sources: &[SourceId], subject: &Pseudonym) -> Result<()> {
    for table in ["audience_members", "audience_changes"] {
        delete_of_subject(w, table, &["subject"], subject, Some(sources)).await?;
    }
    Ok(())
}

/// Deletes the memberships and changes of a subject everywhere.
pub async fn forget_everywhere(w: &mut WriteTx, subject: &Pseudonym) -> Result<()> {
    for table in ["audience_members", "audience_changes"] {
        delete_of_subject(w, table, &["subject"], subject, None).await?;
    }
    Ok(())
}

/// A page of an audience's members at a source, by pseudonym, after `after`.
pub async fn members_page(
    db: &Db,
    audience: &str,
    source: &SourceId,
    after: &str,
    limit: u32,
) -> Result<Vec<Member>> {
    sqlx::query(
        "SELECT audience, source_id, subject, since_ms FROM audience_members
         WHERE audience = $1 AND source_id = $2 AND subject > $3 ORDER BY subject LIMIT $4",
    )
    .bind(audience)
    .bind(source.as_str())
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(member_of)
    .collect()
}

/// The membership at `source` of the first of `subjects` (a subject's pseudonyms under
/// each key) that is a member.
pub async fn member(
    db: &Db,
    audience: &str,
    source: &SourceId,
    subjects: &[Pseudonym],
) -> Result<Option<Member>> {
    for subject in subjects {
        let row = sqlx::query(
            "SELECT audience, source_id, subject, since_ms FROM audience_members
             WHERE audience = $1 AND source_id = $2 AND subject = $3",
        )
        .bind(audience)
        .bind(source.as_str())
        .bind(subject.as_str())
        .fetch_optional(&db.pool)
        .await?;
        if let Some(r) = row {
            return member_of(&r).map(Some);
        }
    }
    Ok(None)
}

/// The audiences at `source` the first of `subjects` that is in any is in, by name.
pub async fn audiences_of(
    db: &Db,
    source: &SourceId,
    subjects: &[Pseudonym],
) -> Result<Vec<Member>> {
    for subject in subjects {
        let rows = sqlx::query(
            "SELECT audience, source_id, subject, since_ms FROM audience_members
             WHERE source_id = $1 AND subject = $2 ORDER BY audience",
        )
        .bind(source.as_str())
        .bind(subject.as_str())
        .fetch_all(&db.pool)
        .await?;
        if !rows.is_empty() {
            return rows.iter().map(member_of).collect();
        }
    }
    Ok(Vec::new())
}

/// Every membership at `source`: (audience, subject), what per-segment popularity is
/// counted from when a recommender is trained.
pub async fn memberships_at(db: &Db, source: &SourceId) -> Result<Vec<(String, Pseudonym)>> {
    sqlx::query("SELECT audience, subject FROM audience_members WHERE source_id = $1")
        .bind(source.as_str())
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, Pseudonym::from_stored(r.try_get(1)?))))
        .collect()
}

/// A page of an audience's entries and exits at a source, oldest first, after the change
/// `after` (its time, subject and direction).
pub async fn changes_page(
    db: &Db,
    audience: &str,
    source: &SourceId,
    after: Option<(i64, &str, bool)>,
    limit: u32,
) -> Result<Vec<Change>> {
    let (at, subject, entered) = after.unwrap_or((i64::MIN, "", false));
    let rows = sqlx::query(
        "SELECT source_id, subject, at_ms, entered FROM audience_changes
         WHERE audience = $1 AND source_id = $2
           AND (at_ms > $3 OR (at_ms = $3 AND (subject > $4 OR (subject = $4 AND entered > $5))))
         ORDER BY at_ms, subject, entered LIMIT $6",
    )
    .bind(audience)
    .bind(source.as_str())
    .bind(at)
    .bind(subject)
    .bind(i64::from(entered))
    .bind(i64::from(limit))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Change {
                source: SourceId::from_stored(r.try_get(0)?),
                subject: Pseudonym::from_stored(r.try_get(1)?),
                at_ms: r.try_get(2)?,
                entered: r.try_get::<i64, _>(3)? != 0,
            })
        })
        .collect()
}
