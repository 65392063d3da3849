//! Data subjects: access (everything held about one subject, a page at a time) and
//! erasure, both audited; `retention` ages everything out.
pub mod retention;

use std::sync::Arc;

use assent_protocol::Timestamp;
use serde_json::{json, Value};

use crate::{
    audit::{Kind, NewEntry, Trail},
    config::Config,
    error::{Error, Result},
    pseudonym::{sha256_hex, Pseudonymizer},
    storage::{subject_data::SUBJECT_TABLES, subjects as stored, Db},
};

/// Subject requests and retention work with: the audit trail (and its database), the
/// pseudonymizer, and the retention periods configured. Cheap to clone.
#[derive(Clone)]
pub struct Subjects {
    trail: Trail,
    pseudonymizer: Pseudonymizer,
    config: Arc<Config>,
}

impl std::fmt::Debug for Subjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subjects(***)")
    }
}

impl Subjects {
    pub fn new(trail: Trail, pseudonymizer: Pseudonymizer, config: Arc<Config>) -> Subjects {
        Subjects {
            trail,
            pseudonymizer,
            config,
        }
    }

    fn db(&self) -> &Db {
        self.trail.db()
    }
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
pub async fn collect(subjects: &Subjects, raw: &str, page: &PageQuery) -> Result<Value> {
    let limit = page.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let after = page.cursor.as_deref().map(Cursor::decode).transpose()?;
    let all = subjects.pseudonymizer.all_pseudonyms(raw);
    let p = all[0].clone();
    let db = subjects.db();
    let after = after.map_or((i64::MIN, String::new(), String::new()), |c| {
        (c.0, c.1, c.2)
    });
    let rows = stored::events_after(db, &all, after, limit + 1).await?;
    let more = rows.len() > limit;
    let mut events = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for r in rows.into_iter().take(limit) {
        events.push(serde_json::from_str(&r.payload).unwrap_or(Value::Null));
        last = Some(Cursor(r.timestamp_ms, r.source_id, r.message_id));
    }
    let next = if more { last.map(|c| c.encode()) } else { None };
    let mut answer = json!({"subjectId": raw, "pseudonym": p, "events": events, "next": next});
    if page.cursor.is_some() {
        return Ok(answer);
    }
    let time = |ms: i64| Timestamp::from_unix_millis(ms).to_string();
    let consent: Vec<Value> = stored::consent_records(db, &all)
        .await?
        .into_iter()
        .map(|data| serde_json::from_str(&data).unwrap_or(Value::Null))
        .collect();
    let refused: Vec<Value> = stored::dead_letters(db, &all)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "messageId": d.message_id.unwrap_or_default(),
                "code": d.code,
                "reason": d.reason,
                "receivedAt": time(d.received_at_ms),
            })
        })
        .collect();
    let trail: Vec<Value> = stored::audit_entries(db, &all)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "kind": e.kind,
                "at": time(e.at_ms),
                "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
            })
        })
        .collect();
    let notices: Vec<Value> = stored::erasure_notices(db, &all)
        .await?
        .into_iter()
        .map(|at| json!({"erasedAt": time(at)}))
        .collect();
    // One entry per source: the events its profile holds, and when it was last updated.
    let mut profiles: Vec<Value> = Vec::new();
    for (source, event, at) in stored::profile_events(db, &all).await? {
        let event = serde_json::from_str::<Value>(&event).unwrap_or(Value::Null);
        match profiles.last_mut() {
            Some(p) if p["source"] == source.as_str() => {
                p["events"].as_array_mut().expect("a list").push(event);
                if p["updatedMs"].as_i64() < Some(at) {
                    p["updatedMs"] = at.into();
                }
            }
            _ => profiles.push(json!({"source": source, "events": [event], "updatedMs": at})),
        }
    }
    for p in &mut profiles {
        let at = p["updatedMs"].as_i64().unwrap_or_default();
        p.as_object_mut().expect("an object").remove("updatedMs");
        p["updatedAt"] = time(at).into();
    }
    answer["profiles"] = profiles.into();
    let memberships: Vec<Value> = stored::audience_memberships(db, &all)
        .await?
        .into_iter()
        .map(|(audience, source, since)| {
            json!({"audience": audience, "source": source, "since": time(since)})
        })
        .collect();
    answer["audienceMemberships"] = memberships.into();
    let changes: Vec<Value> = stored::audience_changes(db, &all)
        .await?
        .into_iter()
        .map(|(audience, source, at, entered)| {
            let change = if entered { "entered" } else { "exited" };
            json!({"audience": audience, "source": source, "change": change, "at": time(at)})
        })
        .collect();
    answer["audienceChanges"] = changes.into();
    let assignments: Vec<Value> = stored::experiment_assignments(db, &all)
        .await?
        .into_iter()
        .map(|(experiment, source, variant, exposed)| {
            json!({"experiment": experiment, "source": source, "variant": variant,
                   "exposedAt": exposed.map(time)})
        })
        .collect();
    answer["experimentAssignments"] = assignments.into();
    let values: Vec<Value> = stored::experiment_values(db, &all)
        .await?
        .into_iter()
        .map(|(experiment, source, metric, value)| {
            json!({"experiment": experiment, "source": source, "metric": metric, "value": value})
        })
        .collect();
    answer["experimentValues"] = values.into();
    let links: Vec<Value> = stored::identity_links(db, &all)
        .await?
        .into_iter()
        .map(|(source, previous, into, kind, at)| {
            json!({"source": source, "merged": previous, "into": into, "kind": kind, "at": time(at)})
        })
        .collect();
    answer["identityLinks"] = links.into();
    let proposals: Vec<Value> = stored::duplicate_proposals(db, &all)
        .await?
        .into_iter()
        .map(|(source, kept, merging, score, status)| {
            json!({"source": source, "subject": kept, "duplicate": merging, "score": score, "status": status})
        })
        .collect();
    answer["duplicateProposals"] = proposals.into();
    answer["erasureNotices"] = notices.into();
    answer["consent"] = consent.into();
    answer["refusedEvents"] = refused.into();
    answer["auditEntries"] = trail.into();
    Ok(answer)
}

/// A subject access request by `actor`: a page of what is held (see [`collect`]),
/// recorded in the audit trail with how much it returned.
pub async fn access(
    subjects: &Subjects,
    raw: &str,
    page: &PageQuery,
    actor: String,
) -> Result<Value> {
    check_raw_id(subjects, raw)?;
    let data = collect(subjects, raw, page).await?;
    let p = subjects.pseudonymizer.pseudonym(raw);
    let mut counts = json!({});
    for table in SUBJECT_TABLES {
        let section = table.access_section;
        if let Some(rows) = data[section].as_array() {
            counts[section] = rows.len().into();
        }
    }
    let entry = NewEntry {
        kind: Kind::SubjectAccess,
        actor,
        subject: Some(p),
        data: json!({"subject": "(see audit_data.subject)", "returned": counts}),
    };
    subjects.trail.record_alone(entry).await?;
    Ok(data)
}

/// Erases what is held about a subject, a batch of rows per transaction so ingest is not
/// held up: consent records first (so nothing new of the subject is accepted meanwhile),
/// then events, dead letters and audit data. The audit chain keeps verifying: only the
/// erasable data rows go. The erasure entry, written last, names the subject by a hash of
/// its pseudonym, which compliance staff can recompute from the raw id. Interrupted, it is
/// simply asked again.
pub async fn erase_subject(subjects: &Subjects, raw: &str, actor: String) -> Result<Value> {
    check_raw_id(subjects, raw)?;
    let all = subjects.pseudonymizer.all_pseudonyms(raw);
    let p = all[0].clone();
    let mut summary = json!({"subjectHash": sha256_hex(p.as_str().as_bytes())});
    for table in SUBJECT_TABLES {
        if let Some(n) = stored::erase(subjects.db(), table, &all, ERASE_BATCH).await? {
            summary[table.name] = n.into();
        }
    }
    let entry = NewEntry {
        kind: Kind::Erasure,
        actor,
        subject: None,
        data: summary.clone(),
    };
    let mut w = subjects.db().write().await?;
    subjects.trail.record(&mut w, entry).await?;
    // The feed's consumers delete what they derived, under every pseudonym the subject
    // may have (current key and rotated-out ones).
    stored::insert_erasure_notices(&mut w, &all, subjects.trail.now()).await?;
    w.commit().await?;
    Ok(summary)
}

/// A request given the stored pseudonym instead of the raw id would find nothing and
/// answer an empty 200: say so instead.
fn check_raw_id(subjects: &Subjects, id: &str) -> Result<()> {
    if subjects.pseudonymizer.looks_like_pseudonym(id) {
        return Err(Error::BadRequest(
            "this is a pseudonym: give the subject's raw id (anonymousId, userId or subjectId as the client sent it)".into(),
        ));
    }
    Ok(())
}
