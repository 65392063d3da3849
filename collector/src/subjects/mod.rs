//! Data subjects: access (everything held about one subject, a page at a time) and
//! erasure, both audited; `retention` ages everything out.
pub mod retention;

use serde_json::{json, Value};
use sqlx::Row;

use crate::{
    audit::export::record_admin_act,
    error::{Error, Result},
    pseudonym::sha256_hex,
    storage::{subject_data::SUBJECT_TABLES, subject_index},
    AppState,
};

/// `$1,...,$n`: every pseudonym a subject may be stored under (one per key, current and
/// rotated out), usable several times in one statement.
fn placeholders(n: usize) -> String {
    crate::storage::numbered(1, n)
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    all: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for p in all {
        q = q.bind(p);
    }
    q
}

/// Binds a subject's pseudonyms, then their subject keys, as
/// [`subject_index::events_of`] expects.
fn bind_events<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    all: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = bind_all(q, all);
    for p in all {
        q = q.bind(crate::pseudonym::subject_key(p));
    }
    q
}

/// Most events in one page of a subject access answer (each at most 32 KB).
pub const MAX_PAGE: usize = 1000;

/// Rows deleted per transaction by an erasure: ingest (on SQLite, one writer for all)
/// gets its turn between batches.
const ERASE_BATCH: i64 = 1000;

/// Where a page of a subject's events starts: after this (time, source, message id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(i64, String, String);

impl Cursor {
    fn encode(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).expect("serializes"))
    }

    fn decode(text: &str) -> Result<Cursor> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Error::BadRequest("cursor is not one this collector gave".into()))
    }
}

/// `?cursor=&limit=` of a subject access request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// What is stored about the subject whose raw id is `raw`: one page of events (oldest
/// first) and, on the first page, a section for every other table of subject data
/// (`storage::subject_data`): consent records, refused events, audit entries. `next` is the
/// cursor of the following page, when there is one.
pub async fn collect(state: &AppState, raw: &str, page: &PageQuery) -> Result<Value> {
    let limit = page.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let after = page.cursor.as_deref().map(Cursor::decode).transpose()?;
    let all = state.pseudonymizer.all_pseudonyms(raw);
    let p = all[0].clone();
    let n = all.len();
    let l = placeholders(n);
    let db = &state.db.pool;
    let sql = format!(
        "SELECT payload, timestamp_ms, source_id, message_id FROM events
         WHERE ({}) AND (timestamp_ms, source_id, message_id) > (${}, ${}, ${})
         ORDER BY timestamp_ms, source_id, message_id LIMIT ${}",
        subject_index::events_of(state.db.backend, n),
        2 * n + 1,
        2 * n + 2,
        2 * n + 3,
        2 * n + 4
    );
    let (t, src, mid) = after.map_or((i64::MIN, String::new(), String::new()), |c| {
        (c.0, c.1, c.2)
    });
    let rows = bind_events(sqlx::query(&sql), &all)
        .bind(t)
        .bind(src)
        .bind(mid)
        .bind(limit as i64 + 1)
        .fetch_all(db)
        .await?;
    let more = rows.len() > limit;
    let mut events = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for r in rows.into_iter().take(limit) {
        let payload: String = r.try_get(0)?;
        events.push(serde_json::from_str(&payload).unwrap_or(Value::Null));
        last = Some(Cursor(r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
    }
    let next = if more { last.map(|c| c.encode()) } else { None };
    let mut answer = json!({"subjectId": raw, "pseudonym": p, "events": events, "next": next});
    if page.cursor.is_some() {
        return Ok(answer);
    }
    let sql = format!(
        "SELECT d.data FROM consent_records c JOIN audit_data d ON d.seq = c.audit_seq
         WHERE c.subject IN ({l}) OR c.user_id IN ({l}) ORDER BY c.timestamp_ms"
    );
    let consent: Vec<Value> = bind_all(sqlx::query(&sql), &all)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            let data: String = r.try_get(0).unwrap_or_default();
            serde_json::from_str(&data).unwrap_or(Value::Null)
        })
        .collect();
    // Dead letters expire after `dead_letter_retention_days`, which bounds these.
    let sql = format!(
        "SELECT message_id, code, reason, received_at_ms FROM dead_letters
         WHERE subject IN ({l}) ORDER BY received_at_ms, id"
    );
    let refused: Vec<Value> = bind_all(sqlx::query(&sql), &all)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "messageId": r.try_get::<Option<String>, _>(0).unwrap_or_default(),
                "code": r.try_get::<String, _>(1).unwrap_or_default(),
                "reason": r.try_get::<String, _>(2).unwrap_or_default(),
                "receivedAt": assent_protocol::Timestamp::from_unix_millis(
                    r.try_get::<i64, _>(3).unwrap_or_default()
                ).to_string(),
            })
        })
        .collect();
    let sql = format!(
        "SELECT d.seq, l.kind, l.at_ms, d.data FROM audit_data d JOIN audit_log l ON l.seq = d.seq
         WHERE d.subject IN ({l}) ORDER BY d.seq"
    );
    let trail: Vec<Value> = bind_all(sqlx::query(&sql), &all)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            let data: String = r.try_get(3).unwrap_or_default();
            json!({
                "seq": r.try_get::<i64, _>(0).unwrap_or_default(),
                "kind": r.try_get::<String, _>(1).unwrap_or_default(),
                "at": assent_protocol::Timestamp::from_unix_millis(
                    r.try_get::<i64, _>(2).unwrap_or_default()
                ).to_string(),
                "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::Null),
            })
        })
        .collect();
    let sql =
        format!("SELECT received_at_ms FROM erasure_notices WHERE subject IN ({l}) ORDER BY seq");
    let notices: Vec<Value> = bind_all(sqlx::query(&sql), &all)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "erasedAt": assent_protocol::Timestamp::from_unix_millis(
                    r.try_get::<i64, _>(0).unwrap_or_default()
                ).to_string(),
            })
        })
        .collect();
    answer["erasureNotices"] = notices.into();
    answer["consent"] = consent.into();
    answer["refusedEvents"] = refused.into();
    answer["auditEntries"] = trail.into();
    Ok(answer)
}

/// A subject access request by `actor`: a page of what is held (see [`collect`]),
/// recorded in the audit trail with how much it returned.
pub async fn access(state: &AppState, raw: &str, page: &PageQuery, actor: String) -> Result<Value> {
    check_raw_id(state, raw)?;
    let data = collect(state, raw, page).await?;
    let p = state.pseudonymizer.pseudonym(raw);
    let mut counts = json!({});
    for table in SUBJECT_TABLES {
        let section = table.access_section;
        if let Some(rows) = data[section].as_array() {
            counts[section] = rows.len().into();
        }
    }
    record_admin_act(
        state,
        crate::audit::Kind::SubjectAccess,
        actor,
        Some(p),
        json!({"subject": "(see audit_data.subject)", "returned": counts}),
    )
    .await?;
    Ok(data)
}

/// Erases what is held about a subject, a batch of rows per transaction so ingest is not
/// held up: consent records first (so nothing new of the subject is accepted meanwhile),
/// then events, dead letters and audit data. The audit chain keeps verifying: only the
/// erasable data rows go. The erasure entry, written last, names the subject by a hash of
/// its pseudonym, which compliance staff can recompute from the raw id. Interrupted, it is
/// simply asked again.
pub async fn erase_subject(state: &AppState, raw: &str, actor: String) -> Result<Value> {
    check_raw_id(state, raw)?;
    let all = state.pseudonymizer.all_pseudonyms(raw);
    let p = all[0].clone();
    let mut summary = json!({"subjectHash": sha256_hex(p.as_bytes())});
    for table in SUBJECT_TABLES {
        let Some(sql) = table.erase_sql(state.db.backend, all.len()) else {
            continue;
        };
        summary[table.name] = erase_batches(state, &all, &sql).await?.into();
    }
    let entry = crate::audit::NewEntry {
        kind: crate::audit::Kind::Erasure,
        actor,
        subject: None,
        data: summary.clone(),
    };
    let mut w = state.db.write().await?;
    state.audit(&mut w, entry).await?;
    // The feed's consumers delete what they derived, under every pseudonym the subject
    // may have (current key and rotated-out ones).
    for pseudonym in &all {
        sqlx::query("INSERT INTO erasure_notices (subject, received_at_ms) VALUES ($1, $2)")
            .bind(pseudonym)
            .bind(state.clock.now_ms())
            .execute(&mut *w.tx)
            .await?;
    }
    w.commit().await?;
    Ok(summary)
}

/// Deletes with `sql` a batch at a time (see [`crate::storage::Db::delete_in_batches`]),
/// bound as [`crate::storage::subject_data::SubjectTable::erase_sql`] says.
async fn erase_batches(state: &AppState, all: &[String], sql: &str) -> Result<u64> {
    state
        .db
        .delete_in_batches(|| bind_events(sqlx::query(sql), all).bind(ERASE_BATCH))
        .await
}

/// A request given the stored pseudonym instead of the raw id would find nothing and
/// answer an empty 200: say so instead.
fn check_raw_id(state: &AppState, id: &str) -> Result<()> {
    if state.pseudonymizer.looks_like_pseudonym(id) {
        return Err(Error::BadRequest(
            "this is a pseudonym: give the subject's raw id (anonymousId, userId or subjectId as the client sent it)".into(),
        ));
    }
    Ok(())
}
