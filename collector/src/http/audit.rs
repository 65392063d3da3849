//! The audit routes: export and verification for compliance staff, the public keys,
//! signed checkpoints, consistency proofs and consent receipts' inclusion proofs (the
//! work is in `audit/`).
use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Json,
};

use crate::{
    audit::{
        self,
        export::{Format, Window},
        Trail,
    },
    error::{Error, Result},
    http::extract::{consent_reader, require_admin, PathParam, QueryParams},
    http::schemas::{ComplianceErrors, ConsentReadErrors, RouteErrors},
    keys::Keys,
    storage::{self, Caller},
};
use serde::Deserialize;

/// The audit trail, streamed as JSONL or CSV (constant memory). Audited.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "compliance",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "First time included (ISO 8601)."),
        ("to" = Option<String>, Query, format = DateTime, description = "Last time included (ISO 8601)."),
        ("format" = Option<String>, Query, description = "`jsonl` (the default) or `csv`."),
    ),
    responses(
        (status = 200, description = "One entry per line.", content(
            (crate::audit::Entry = "application/x-ndjson"),
            (String = "text/csv")
        )),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn export(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    headers: HeaderMap,
    QueryParams(window): QueryParams<Window>,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let (from, to) = window.bounds()?;
    let format = Format::parse(window.format.as_deref())?;
    let data = serde_json::json!({"from": window.from, "to": window.to, "format": window.format});
    let cut = audit::export::begin(&trail, caller.actor(), data, from, to).await?;
    let body = Body::from_stream(audit::export::rendered(trail.db().clone(), cut, format));
    let (ctype, ext) = match format {
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"assent-audit.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Verifies the stored chain and its signed checkpoints.
///
/// The verdict is reused for a while (`audit::export::verified`); `verifiedAt` says when
/// it was reached.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "compliance",
    responses(
        (status = 200, description = "The verdict.", body = crate::audit::Report),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let (report, at_ms) = audit::export::verified(&trail).await?;
    let mut body = serde_json::to_value(&report).expect("serializes");
    body["verifiedAt"] = assent_protocol::Timestamp::from_unix_millis(at_ms)
        .to_string()
        .into();
    Ok(Json(body).into_response())
}

/// The compliance token, or a source's server key (never from a browser): who may read
/// checkpoints and proofs. Write keys are public, and answered as unknown.
async fn proof_reader(keys: &Keys, headers: &HeaderMap) -> Result<()> {
    match crate::http::extract::authenticate(keys, headers, None).await? {
        Caller::Admin { .. } => Ok(()),
        Caller::Server { .. } if !headers.contains_key(header::ORIGIN) => Ok(()),
        Caller::Server { .. } => Err(Error::Forbidden),
        Caller::Source { .. } => Err(Error::Unauthorized),
    }
}

/// The keys that sign the audit log's checkpoints (public: anyone may check them).
///
/// `current` signs new checkpoints; `keys` lists every key that has signed, oldest
/// first, so checkpoints signed before a rotation still verify. Each is a C2SP verifier
/// key (`name+keyid+base64`), the form `audit verify --public-key` and
/// `tools/verify_audit.py --public-key` take.
#[utoipa::path(
    get,
    path = "/.well-known/assent-audit-keys",
    tag = "compliance",
    responses(
        (status = 200, description = "The log's origin and keys.", body = Object),
        RouteErrors,
    )
)]
pub async fn public_keys(State(trail): State<Arc<Trail>>) -> Result<Response> {
    let keys: Vec<serde_json::Value> = storage::audit::public_keys(trail.db())
        .await?
        .into_iter()
        .map(|(vkey, at)| {
            serde_json::json!({
                "vkey": vkey,
                "firstUsed": assent_protocol::Timestamp::from_unix_millis(at).to_string(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "origin": trail.signer().name(),
        "current": trail.signer().vkey(),
        "keys": keys,
    }))
    .into_response())
}

/// The newest signed checkpoint: a C2SP signed note of (origin, tree size, root).
///
/// Signed now when entries were appended since the last one.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoint",
    tag = "compliance",
    responses(
        (status = 200, description = "The signed note.", body = String, content_type = "text/plain"),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn checkpoint(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    headers: HeaderMap,
) -> Result<Response> {
    proof_reader(&keys, &headers).await?;
    let c = trail.checkpoint().await?.ok_or(Error::NotFound)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        c.note,
    )
        .into_response())
}

/// `?after=&limit=` of `GET /v1/audit/checkpoints`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointPage {
    /// Only checkpoints of a larger tree size (default 0).
    pub after: Option<u64>,
    /// At most this many (default and at most 1000).
    pub limit: Option<i64>,
}

/// The stored signed checkpoints, oldest first.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints",
    tag = "compliance",
    params(CheckpointPage),
    responses(
        (status = 200, description = "`{checkpoints: [{size, root, signedAt, note}]}`; root in base64.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn checkpoints(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    headers: HeaderMap,
    QueryParams(page): QueryParams<CheckpointPage>,
) -> Result<Response> {
    proof_reader(&keys, &headers).await?;
    let limit = page.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(Error::BadRequest("limit must be 1 to 1000".into()));
    }
    let list: Vec<serde_json::Value> = storage::audit::checkpoints(
        trail.db(),
        page.after.unwrap_or(0),
        limit,
    )
    .await?
    .into_iter()
    .map(|c| {
        let root = crate::pseudonym::unhex(&c.root).unwrap_or_default();
        serde_json::json!({
            "size": c.size,
            "root": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, root),
            "signedAt": assent_protocol::Timestamp::from_unix_millis(c.signed_at_ms).to_string(),
            "note": c.note,
        })
    })
    .collect();
    Ok(Json(serde_json::json!({ "checkpoints": list })).into_response())
}

/// `?from=&to=` of `GET /v1/audit/consistency`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Sizes {
    /// The tree size of the older signed checkpoint.
    pub from: u64,
    /// The tree size of the newer one (default: the newest, signed now if need be).
    pub to: Option<u64>,
}

/// A proof that the log of one signed checkpoint only grew into the log of a newer one
/// (RFC 9162 consistency proof, with both checkpoints).
#[utoipa::path(
    get,
    path = "/v1/audit/consistency",
    tag = "compliance",
    params(Sizes),
    responses(
        (status = 200, description = "The proof.", body = crate::audit::proofs::ConsistencyProof),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn consistency(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    headers: HeaderMap,
    QueryParams(sizes): QueryParams<Sizes>,
) -> Result<Response> {
    proof_reader(&keys, &headers).await?;
    let proof = audit::proofs::consistency_between(&trail, sizes.from, sizes.to).await?;
    Ok(Json(proof).into_response())
}

/// The consent record `consent_id` of the source the caller may read (as
/// `GET /v1/consent/{subjectId}`: a server key its own, the compliance token the one it
/// names), with that source.
async fn readable_record(
    keys: &Keys,
    trail: &Trail,
    headers: &HeaderMap,
    source: Option<String>,
    consent_id: &str,
) -> Result<(crate::ids::SourceId, storage::consent::ReceiptRecord)> {
    let source = consent_reader(keys, headers, source.as_deref()).await?;
    let record = storage::consent::receipt(trail.db(), &source, consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok((source, record))
}

/// A consent record's audit entry with its Merkle inclusion proof to the newest signed
/// checkpoint, and the checkpoint: checkable offline with the public key alone.
///
/// With the compliance token (`?source=` names the source) or the source's own server
/// key, as `GET /v1/consent/{subjectId}`.
#[utoipa::path(
    get,
    path = "/v1/consent/receipts/{consentId}/proof",
    tag = "consent",
    params(("consentId" = String, Path, description = "The record's consentId."), crate::http::ConsentQuery),
    responses(
        (status = 200, description = "The entry, its leaf index, the proof, the checkpoint.", body = crate::audit::proofs::InclusionProof),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn receipt_proof(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    PathParam(consent_id): PathParam<String>,
    QueryParams(query): QueryParams<crate::http::ConsentQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (_, record) = readable_record(&keys, &trail, &headers, query.source, &consent_id).await?;
    let proof = audit::proofs::inclusion_of(&trail, record.audit_seq).await?;
    Ok(Json(proof).into_response())
}

/// `?source=&format=` of `GET /v1/consent/receipts/{consentId}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceiptQuery {
    /// The source (id or name) whose record it is: required with the compliance token.
    pub source: Option<String>,
    /// `iso27560` (the default: the elements of an ISO/IEC TS 27560:2023 consent record)
    /// or `kantara` (the Kantara Consent Receipt v1.1).
    pub format: Option<String>,
}

/// A consent record as a receipt: ISO/IEC TS 27560 elements or a Kantara Consent
/// Receipt, naming the audit entry that recorded it (check it with `…/proof`).
///
/// With the compliance token (`?source=` names the source) or the source's own server
/// key, as `GET /v1/consent/{subjectId}`.
#[utoipa::path(
    get,
    path = "/v1/consent/receipts/{consentId}",
    tag = "consent",
    params(("consentId" = String, Path, description = "The record's consentId."), ReceiptQuery),
    responses(
        (status = 200, description = "The receipt.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn receipt(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    PathParam(consent_id): PathParam<String>,
    QueryParams(query): QueryParams<ReceiptQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let format = crate::consent::receipt::Format::parse(query.format.as_deref())
        .ok_or_else(|| Error::BadRequest("format must be iso27560 or kantara".into()))?;
    let (source, record) =
        readable_record(&keys, &trail, &headers, query.source, &consent_id).await?;
    let entry = storage::audit::entry(trail.db(), record.audit_seq)
        .await?
        .ok_or(Error::NotFound)?;
    let place = crate::consent::receipt::LogPlace {
        origin: trail.signer().name(),
        entry_hash: &entry.hash,
    };
    Ok(Json(crate::consent::receipt::receipt(
        format, &record, &source, &place,
    ))
    .into_response())
}

/// Every consent record of a source as CSV, one row per record with the audit entry that
/// recorded it, in columns an auditor reads without a manual (streamed; audited).
///
/// With the compliance token (`?source=` names the source) or the source's own server
/// key.
#[utoipa::path(
    get,
    path = "/v1/audit/receipts",
    tag = "compliance",
    params(crate::http::ConsentQuery),
    responses(
        (status = 200, description = "CSV, a header row first.", body = String, content_type = "text/csv"),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn receipts_csv(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    QueryParams(query): QueryParams<crate::http::ConsentQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (source, caller) =
        crate::http::extract::reader_caller(&keys, &headers, query.source.as_deref()).await?;
    trail
        .record_alone(audit::NewEntry {
            kind: audit::Kind::AuditExport,
            actor: caller.actor(),
            subject: None,
            data: serde_json::json!({"receipts": source.as_str()}),
        })
        .await?;
    let db = trail.db().clone();
    let header = futures_util::stream::iter([Ok::<_, Error>(bytes::Bytes::from_static(
        crate::consent::receipt::CSV_HEADER.as_bytes(),
    ))]);
    let rows = futures_util::stream::unfold(Some(0i64), move |after| {
        let (db, source) = (db.clone(), source.clone());
        async move {
            let after = after?;
            match storage::consent::receipts_after(&db, &source, after, 1000).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|(r, _)| r.audit_seq);
                    let text: String = page
                        .iter()
                        .map(|(r, hash)| crate::consent::receipt::csv_row(r, &source, hash))
                        .collect();
                    Some((Ok(bytes::Bytes::from(text)), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"assent-consent-receipts.csv\"",
            ),
        ],
        Body::from_stream(futures_util::StreamExt::chain(header, rows)),
    )
        .into_response())
}
