//! Consent proofs a regulator can check without trusting us: receipts' inclusion proofs,
//! consistency proofs and anchored exports, checked offline by both verifiers (the
//! collector's `audit verify --public-key` and `tools/verify_audit.py`, written from
//! docs/audit-format.md), which must agree on every honest and tampered file.
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::*;

/// The verdict without its wording: what both verifiers must agree on.
fn essence(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(p) = v.get_mut("problem").and_then(Value::as_object_mut) {
        p.remove("detail");
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("file");
    }
    v
}

fn rust_verdict(path: &Path, key: &str) -> Value {
    let v = assent_collector::cli::verify_anchored(path, key).expect("the file is readable");
    essence(&serde_json::to_value(v).unwrap())
}

/// The Python verifier's verdicts on `files`, one run for all.
fn python_verdicts(files: &[PathBuf], key: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/venv/bin/python");
    assert!(
        python.exists(),
        "the second verifier needs target/venv (scripts/ensure-deps.sh makes it)"
    );
    let out = std::process::Command::new(python)
        .arg(root.join("tools/verify_audit.py"))
        .args(files)
        .args(["--public-key", key])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "verify_audit.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if files.len() == 1 {
        return vec![essence(&serde_json::from_str(&stdout).unwrap())];
    }
    stdout
        .lines()
        .map(|l| essence(&serde_json::from_str(l).unwrap()))
        .collect()
}

/// Writes each `(name, text)` and returns both verifiers' verdicts, asserting that they
/// agree.
fn both(dir: &Path, key: &str, files: &[(String, String)]) -> Vec<Value> {
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(name, text)| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect();
    let python = python_verdicts(&paths, key);
    paths
        .iter()
        .zip(python)
        .map(|(p, py)| {
            let rust = rust_verdict(p, key);
            assert_eq!(rust, py, "the verifiers disagree on {}", p.display());
            rust
        })
        .collect()
}

async fn text(app: &TestApp, path: &str) -> String {
    let r = app.admin_get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// `/.well-known/assent-audit-keys`, read as anyone would (no credential).
async fn public_keys(app: &TestApp) -> Value {
    app.client
        .get(format!("{}/.well-known/assent-audit-keys", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn current_key(app: &TestApp) -> String {
    public_keys(app).await["current"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn consents(app: &TestApp, from: usize, to: usize) {
    for i in from..to {
        let c = consent(
            &format!("c{i}"),
            &format!("s{i}"),
            json!({"analytics": i % 2 == 0}),
            "2026-11-29T10:00:00.000Z",
        );
        assert_eq!(app.post("/v1/consent", &c).await.0, 201);
    }
}

fn now_iso() -> String {
    use assent_collector::Clock as _;
    assent_protocol::Timestamp::from_unix_millis(assent_collector::SystemClock.now_ms()).to_string()
}

pub async fn receipts_exports_and_consistency_verify_offline(b: Backend) {
    let app = spawn_app(b).await;
    let dir = tempfile::tempdir().unwrap();
    consents(&app, 0, 7).await;
    let key = current_key(&app).await;
    assert_eq!(key, app.state.trail.signer().vkey());

    // A receipt's proof: the compliance token names the source; the public write key
    // learns nothing; an unknown record is 404.
    let proof = text(&app, "/v1/consent/receipts/c3/proof?source=default").await;
    let p: Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(p["entry"]["kind"], "consent");
    assert_eq!(p["leafIndex"], p["entry"]["seq"].as_i64().unwrap() - 1);
    let r = app
        .client
        .get(format!("{}/v1/consent/receipts/c3/proof", app.url))
        .bearer_auth(WRITE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .admin_get("/v1/consent/receipts/nosuch/proof?source=default")
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.admin_get("/v1/consent/receipts/c3/proof")
            .await
            .status(),
        400
    );

    // The same record as an ISO/IEC TS 27560 receipt and a Kantara receipt, naming the
    // audit entry the proof is about.
    let iso = app
        .admin_json("/v1/consent/receipts/c3?source=default&format=iso27560")
        .await;
    assert_eq!(iso["recordHeader"]["recordId"], "c3", "{iso}");
    assert_eq!(
        iso["recordHeader"]["recordStorage"]["auditEntryHash"],
        p["entry"]["hash"]
    );
    assert_eq!(iso["notice"]["version"], "2026-01");
    assert_eq!(iso["event"]["method"], "custom");
    let pseudonym = iso["recordHeader"]["piiPrincipalId"].as_str().unwrap();
    assert!(
        pseudonym.starts_with("k1.") && !pseudonym.contains("s3"),
        "{iso}"
    );
    let analytics = iso["processing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["purpose"] == "analytics")
        .unwrap();
    assert_eq!(
        analytics["consentStatus"], "not given",
        "c3 refused analytics"
    );
    let kantara = app
        .admin_json("/v1/consent/receipts/c3?source=default&format=kantara")
        .await;
    assert_eq!(kantara["consentReceiptID"], "c3");
    assert_eq!(kantara["auditEntry"]["seq"], p["entry"]["seq"]);
    assert_eq!(
        app.admin_get("/v1/consent/receipts/c3?source=default&format=xml")
            .await
            .status(),
        400
    );

    // Every record of the source as CSV, in words, each with its audit entry.
    let csv = text(&app, "/v1/audit/receipts?source=default").await;
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("record_id,person_pseudonym,decided_at"),
        "{csv}"
    );
    assert_eq!(rows.len(), 1 + 7, "{csv}");
    let c3 = rows.iter().find(|r| r.starts_with("\"c3\"")).unwrap();
    assert!(c3.contains("\"necessary\",\"analytics\""), "{c3}");
    assert!(c3.contains(p["entry"]["hash"].as_str().unwrap()), "{c3}");
    assert_eq!(
        app.client
            .get(format!("{}/v1/audit/receipts?source=default", app.url))
            .bearer_auth(WRITE_KEY)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Checkpoints every 5 entries and on demand; a consistency proof between two.
    let note = text(&app, "/v1/audit/checkpoint").await;
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(lines[0], app.state.trail.signer().name());
    let listed: Value = app.admin_json("/v1/audit/checkpoints").await;
    let sizes: Vec<u64> = listed["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["size"].as_u64().unwrap())
        .collect();
    assert!(sizes.len() >= 2 && sizes.contains(&5), "{sizes:?}");
    let consistency = text(&app, &format!("/v1/audit/consistency?from={}", sizes[0])).await;
    for bad in ["from=999999", "from=1&to=2", "to=5"] {
        let r = app.admin_get(&format!("/v1/audit/consistency?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }

    // Erasure: the entry's data goes, every proof still verifies.
    let mid = now_iso();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    consents(&app, 7, 10).await;
    assert_eq!(app.admin_delete("/v1/subjects/s3").await.status(), 200);
    let jsonl = text(&app, "/v1/audit/export").await;
    let csv = text(&app, "/v1/audit/export?format=csv").await;
    let window = text(&app, &format!("/v1/audit/export?from={mid}")).await;
    let verdicts = both(
        dir.path(),
        &key,
        &[
            ("proof.json".into(), proof),
            ("consistency.json".into(), consistency),
            ("export.jsonl".into(), jsonl.clone()),
            ("export.csv".into(), csv),
            ("window.jsonl".into(), window.clone()),
        ],
    );
    for v in &verdicts {
        assert_eq!(v["ok"], true, "{v}");
    }
    assert!(
        verdicts[2]["erased"].as_u64().unwrap() >= 1,
        "{}",
        verdicts[2]
    );
    let anchor: Value = serde_json::from_str(window.lines().next().unwrap()).unwrap();
    assert!(anchor["anchor"]["first"].as_i64().unwrap() > 1, "{anchor}");
    // The server's own walk agrees.
    let verify = app.admin_json("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| format!("{l}\n")).collect()
}

fn join(lines: &[String]) -> String {
    lines.concat()
}

/// The anchor of a JSONL export, changed by `f`.
fn with_anchor(text: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut ls = lines(text);
    let mut a: Value = serde_json::from_str(&ls[0]).unwrap();
    f(&mut a["anchor"]);
    ls[0] = format!("{a}\n");
    join(&ls)
}

/// A signed note with one bit of its (first) signature flipped.
fn flip_signature(note: &str) -> String {
    let (text, sig) = note.rsplit_once(' ').unwrap();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(sig.trim_end())
        .unwrap();
    raw[10] ^= 1;
    format!(
        "{text} {}\n",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// One entry line of a JSONL export changed by `f`.
fn with_entry(text: &str, line: usize, f: impl FnOnce(&mut Value)) -> String {
    let mut ls = lines(text);
    let mut e: Value = serde_json::from_str(&ls[line]).unwrap();
    f(&mut e);
    ls[line] = format!("{e}\n");
    join(&ls)
}

/// A small seeded generator, so a failing case can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What a file says, line by line, as the verifier reads it: two files that say the same
/// are the same export, whatever their bytes.
fn meaning(text: &str) -> String {
    let mut csv = false;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "{:?}",
                assent_collector::audit::anchor::parse_line(l, i + 1, &mut csv)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn the_tamper_battery_is_caught_by_both_verifiers() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(Backend::Sqlite, dir.path()).await;
    let mut config = config(&database);
    // A second log under the same key, to splice with.
    let seed = "11".repeat(32);
    config.audit_signing_key = Some(assent_collector::config::Secret::new(seed.clone()));
    config.audit_origin = Some("consent.example/audit".into());
    let app = spawn_with(config.clone(), dir).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_db = fresh_database(Backend::Sqlite, other_dir.path()).await;
    let other = spawn_with(
        assent_collector::Config {
            database_url: assent_collector::config::Secret::new(other_db),
            ..config
        },
        other_dir,
    )
    .await;
    let key = current_key(&app).await;
    assert_eq!(key, current_key(&other).await, "one key, two logs");

    consents(&app, 0, 8).await;
    let old = text(&app, "/v1/audit/export").await;
    let mid = now_iso();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    consents(&app, 8, 16).await;
    consents(&other, 0, 16).await;
    let honest = text(&app, "/v1/audit/export").await;
    let window = text(&app, &format!("/v1/audit/export?from={mid}")).await;
    let csv = text(&app, "/v1/audit/export?format=csv").await;
    let foreign = text(&other, "/v1/audit/export").await;
    let proof = text(&app, "/v1/consent/receipts/c5/proof?source=default").await;
    let consistency = text(&app, "/v1/audit/consistency?from=5").await;

    let honest_files: Vec<(String, String)> = vec![
        ("honest.jsonl".into(), honest.clone()),
        ("old.jsonl".into(), old.clone()),
        ("window.jsonl".into(), window.clone()),
        ("honest.csv".into(), csv.clone()),
        ("foreign.jsonl".into(), foreign.clone()),
        ("proof.json".into(), proof.clone()),
        ("consistency.json".into(), consistency.clone()),
    ];
    for v in both(dir_of(&app), &key, &honest_files) {
        assert_eq!(v["ok"], true, "no false alarm on an honest file: {v}");
    }

    let h = lines(&honest);
    let n = h.len();
    let w = lines(&window);
    let f = lines(&foreign);
    let old_anchor: Value = serde_json::from_str(old.lines().next().unwrap()).unwrap();
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "edit-data",
            honest.replacen("analytics\\\":true", "analytics\\\":fals", 1),
            "data",
        ),
        (
            "edit-actor",
            with_entry(&honest, 3, |e| e["actor"] = "key:someone-else".into()),
            "entry",
        ),
        (
            "edit-hash",
            with_entry(&honest, 3, |e| {
                e["hash"] = "ab".repeat(32).into();
            }),
            "entry",
        ),
        ("delete", join(&[&h[..4], &h[5..]].concat()), "missing"),
        ("insert", join(&[&h[..5], &h[4..]].concat()), "order"),
        (
            "reorder",
            join(&[&h[..3], &h[4..5], &h[3..4], &h[5..]].concat()),
            "missing",
        ),
        (
            "truncate-head",
            join(&[&h[..1], &h[2..]].concat()),
            "missing",
        ),
        ("truncate-tail", join(&h[..n - 1]), "truncated"),
        (
            "truncate-window-head",
            join(&[&w[..1], &w[2..]].concat()),
            "missing",
        ),
        ("truncate-window-tail", join(&w[..w.len() - 1]), "truncated"),
        (
            "splice-two-logs",
            join(&[&h[..6], &f[6..]].concat()),
            "chain",
        ),
        (
            "splice-two-exports",
            join(&[&w[..1], &h[1..]].concat()),
            "order",
        ),
        (
            "replay-old-checkpoint",
            with_anchor(&honest, |a| {
                a["checkpoint"] = old_anchor["anchor"]["checkpoint"].clone()
            }),
            "statement",
        ),
        (
            "flip-checkpoint-signature",
            with_anchor(&honest, |a| {
                a["checkpoint"] = flip_signature(a["checkpoint"].as_str().unwrap()).into()
            }),
            "checkpoint-signature",
        ),
        (
            "flip-statement-signature",
            with_anchor(&honest, |a| {
                a["statement"] = flip_signature(a["statement"].as_str().unwrap()).into()
            }),
            "statement-signature",
        ),
        (
            "claim-another-range",
            with_anchor(&honest, |a| a["first"] = 2.into()),
            "statement",
        ),
        ("drop-the-anchor", join(&h[1..]), "anchor"),
        (
            "edit-csv",
            csv.replacen("analytics\"\":true", "analytics\"\":fals", 1),
            "data",
        ),
        (
            "delete-csv-row",
            {
                let c = lines(&csv);
                join(&[&c[..5], &c[6..]].concat())
            },
            "missing",
        ),
    ];
    let p: Value = serde_json::from_str(&proof).unwrap();
    let mut edited = p.clone();
    edited["entry"]["data"] = edited["entry"]["data"]
        .as_str()
        .unwrap()
        .replace("\"c5\"", "\"c6\"")
        .into();
    cases.push(("receipt-edit-data", edited.to_string(), "data"));
    let mut flipped = p.clone();
    flipped["proof"][0] = base64::engine::general_purpose::STANDARD
        .encode([7u8; 32])
        .into();
    cases.push(("receipt-flip-proof", flipped.to_string(), "inclusion"));
    let mut moved = p.clone();
    moved["leafIndex"] = (p["leafIndex"].as_u64().unwrap() + 1).into();
    cases.push(("receipt-other-index", moved.to_string(), "inclusion"));
    let c: Value = serde_json::from_str(&consistency).unwrap();
    let mut bad = c.clone();
    bad["proof"][0] = base64::engine::general_purpose::STANDARD
        .encode([7u8; 32])
        .into();
    cases.push(("consistency-flip-proof", bad.to_string(), "consistency"));
    let mut swapped = c.clone();
    swapped["fromCheckpoint"] = c["toCheckpoint"].clone();
    swapped["toCheckpoint"] = c["fromCheckpoint"].clone();
    cases.push(("consistency-swapped", swapped.to_string(), "consistency"));

    let files: Vec<(String, String)> = cases
        .iter()
        .map(|(name, text, _)| (format!("{name}.txt"), text.clone()))
        .collect();
    for ((name, text, code), v) in cases.iter().zip(both(dir_of(&app), &key, &files)) {
        assert_ne!(text, &honest, "{name} changed nothing");
        assert_eq!(v["ok"], false, "{name} went unnoticed: {v}");
        assert_eq!(v["problem"]["code"], *code, "{name}: {v}");
    }
    // The wrong public key refuses every honest file.
    let stranger =
        assent_collector::audit::note::NoteSigner::new("consent.example/audit", &[3u8; 32]).vkey();
    for v in both(dir_of(&app), &stranger, &honest_files) {
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["problem"]["code"], "checkpoint-signature", "{v}");
    }

    // Random tampering: one character changed, a line deleted, repeated or moved, the
    // file cut short. Every change that alters what the file says is caught, and both
    // verifiers name the same problem.
    let mut rng = XorShift(0x5eed_a0d1);
    let original = meaning(&honest);
    let mut mutants = Vec::new();
    while mutants.len() < 150 {
        let mut ls = lines(&honest);
        match rng.below(5) {
            0 | 1 => {
                let i = rng.below(ls.len());
                let chars: Vec<char> = ls[i].trim_end().chars().collect();
                let at = rng.below(chars.len());
                let pick = ['0', '7', 'a', 'f', 'Z', '"', ',', '{', ':', '\\', ' '];
                let c = pick[rng.below(pick.len())];
                if chars[at] == c {
                    continue;
                }
                let mut changed = chars.clone();
                changed[at] = c;
                ls[i] = changed.into_iter().collect::<String>() + "\n";
            }
            2 => {
                ls.remove(rng.below(ls.len()));
            }
            3 => {
                let i = rng.below(ls.len());
                let copy = ls[i].clone();
                ls.insert(rng.below(ls.len() + 1), copy);
            }
            _ => {
                let i = rng.below(ls.len() - 1);
                ls.swap(i, i + 1);
            }
        }
        let text = join(&ls);
        if meaning(&text) == original {
            continue;
        }
        mutants.push((format!("mutant-{}.txt", mutants.len()), text));
    }
    for ((name, _), v) in mutants.iter().zip(both(dir_of(&app), &key, &mutants)) {
        assert_eq!(v["ok"], false, "{name} went unnoticed: {v}");
    }
}

fn dir_of(app: &TestApp) -> &Path {
    app.dir()
}

/// Two collectors on one PostgreSQL database append to one log: one key, one tree, one
/// sequence of checkpoints, whatever order their writes interleave in.
pub async fn replicas_of_one_postgres_extend_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(Backend::Postgres, dir.path()).await;
    let a = spawn_with(config(&database), dir).await;
    let b = spawn_with(config(&database), tempfile::tempdir().unwrap()).await;
    let key = current_key(&a).await;
    assert_eq!(
        key,
        current_key(&b).await,
        "the replicas share the signing key"
    );
    let mut tasks = Vec::new();
    for (name, app) in [("a", &a), ("b", &b)] {
        for worker in 0..3 {
            let (client, url) = (app.client.clone(), app.url.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let id = format!("{name}{worker}-{i}");
                    let c = consent(
                        &id,
                        &id,
                        json!({"analytics": true}),
                        "2026-11-29T10:00:00.000Z",
                    );
                    let r = client
                        .post(format!("{url}/v1/consent"))
                        .basic_auth(WRITE_KEY, Some(""))
                        .json(&c)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let verify = a.admin_json("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(
        verify["checkpoints_verified"].as_u64().unwrap() >= 10,
        "{verify}"
    );
    let from_a = text(&a, "/v1/audit/export").await;
    let from_b = text(&b, "/v1/consent/receipts/a0-3/proof?source=default").await;
    let checkpoints = a.admin_json("/v1/audit/checkpoints").await;
    let first = checkpoints["checkpoints"][0]["size"].as_u64().unwrap();
    let consistency = text(&b, &format!("/v1/audit/consistency?from={first}")).await;
    let verdicts = both(
        a.dir(),
        &key,
        &[
            ("a.jsonl".into(), from_a),
            ("b-proof.json".into(), from_b),
            ("b-consistency.json".into(), consistency),
        ],
    );
    for v in &verdicts {
        assert_eq!(v["ok"], true, "{v}");
    }
    assert!(
        verdicts[0]["entries"].as_u64().unwrap() >= 60,
        "{}",
        verdicts[0]
    );
}

/// A new signing key (a new `audit_signing_key_id`) is audited, both public keys stay
/// listed, and checkpoints signed by the old key still verify.
pub async fn the_signing_key_rotates_and_old_checkpoints_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(Backend::Sqlite, dir.path()).await;
    let old = spawn_with(config(&database), tempfile::tempdir().unwrap()).await;
    consents(&old, 0, 6).await;
    let old_key = current_key(&old).await;
    let old_proof = text(&old, "/v1/consent/receipts/c2/proof?source=default").await;
    let mut rotated = config(&database);
    rotated.audit_signing_key_id = "s2".into();
    let new = spawn_with(rotated, dir).await;
    consents(&new, 6, 12).await;
    let new_key = current_key(&new).await;
    assert_ne!(old_key, new_key);
    let keys = public_keys(&new).await;
    let listed: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["vkey"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [old_key.as_str(), new_key.as_str()]);
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM audit_log ORDER BY seq")
        .fetch_all(&new.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "signing_key_rotation")
            .count(),
        1
    );
    let verify = new.admin_json("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    // The old receipt verifies with the old key, a new one with the new key.
    let new_proof = text(&new, "/v1/consent/receipts/c8/proof?source=default").await;
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        both(d.path(), &old_key, &[("old.json".into(), old_proof)])[0]["ok"],
        true
    );
    assert_eq!(
        both(d.path(), &new_key, &[("new.json".into(), new_proof)])[0]["ok"],
        true
    );
}
