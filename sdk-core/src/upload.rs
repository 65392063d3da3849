//! Delivery: batches from the queue, what each collector answer means, backoff, and the
//! uploader thread that sleeps until there is something to send.
use std::{
    io::Write,
    sync::atomic::Ordering,
    time::{Duration, Instant, SystemTime},
};

use assent_protocol::{BatchResponse, Timestamp, BATCH_PATH};
use base64::Engine as _;
use flate2::{write::GzEncoder, Compression};

use crate::{
    engine::Engine,
    error::{AssentError, Result},
    queue::{Class, Item},
    records::FlushResult,
    transport::{HttpRequest, HttpResponse},
};

/// Bodies above this size are gzip-compressed.
pub(crate) const GZIP_ABOVE_BYTES: usize = 1024;
/// Room kept in a batch for the envelope around the entries.
const ENVELOPE_OVERHEAD: usize = 128;
/// The longest `Retry-After` honoured; a larger one is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Ends a batch before its consent record number `MAX_CONSENT_RECORDS_PER_BATCH + 1`: the
/// collector refuses a request with more (400, final), and consent records must never be
/// dropped. The rest go in the next batch.
pub(crate) fn cap_consent_records(items: &mut Vec<Item>) {
    let mut consent = 0;
    let cut = items.iter().position(|i| {
        if i.class == Class::Consent {
            consent += 1;
        }
        consent > assent_protocol::MAX_CONSENT_RECORDS_PER_BATCH
    });
    if let Some(cut) = cut {
        items.truncate(cut);
    }
}

/// What one collector answer means for the batch that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: every entry is settled (stored, duplicate or rejected for good).
    Acknowledged,
    /// 413: the batch is too large for this collector; send it in halves.
    Split,
    /// 400 or 422: the collector can never take this batch; drop it and count it.
    Refused,
    /// 401 or 403: stop until the write key changes.
    Unauthorized,
    /// 429, 408 or 5xx and the like: try again later.
    Retry { after: Option<Duration> },
}

impl Verdict {
    pub(crate) fn of(response: &HttpResponse, now: SystemTime) -> Verdict {
        let after = response
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, now));
        match response.status {
            200..=299 => Verdict::Acknowledged,
            413 => Verdict::Split,
            400 | 422 => Verdict::Refused,
            401 | 403 => Verdict::Unauthorized,
            _ => Verdict::Retry { after },
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Exponential backoff with full jitter: uniform in `[0, min(max, base · 2^attempt)]`.
pub(crate) fn backoff(
    attempt: u32,
    base: Duration,
    max: Duration,
    rng: &mut fastrand::Rng,
) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(max);
    Duration::from_millis(rng.u64(0..=ceiling.as_millis() as u64))
}

/// The batch envelope around already-serialized entries. `sentAt` is the time of this
/// attempt, so the collector's skew correction stays right across retries.
pub(crate) fn envelope(items: &[Item], sent_at: Timestamp) -> Vec<u8> {
    let size: usize = items.iter().map(|i| i.payload.len() + 1).sum();
    let mut body = Vec::with_capacity(size + ENVELOPE_OVERHEAD);
    let list = |body: &mut Vec<u8>, consent: bool| {
        let mut first = true;
        for item in items
            .iter()
            .filter(|i| (i.class == Class::Consent) == consent)
        {
            if !first {
                body.push(b',');
            }
            first = false;
            body.extend_from_slice(&item.payload);
        }
    };
    body.extend_from_slice(b"{\"batch\":[");
    list(&mut body, false);
    body.extend_from_slice(b"],\"consent\":[");
    list(&mut body, true);
    body.extend_from_slice(b"],\"sentAt\":\"");
    body.extend_from_slice(sent_at.to_string().as_bytes());
    body.extend_from_slice(b"\"}");
    body
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// How a failed attempt ended, and when to try again.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: AssentError,
    pub retry_after: Option<Duration>,
}

impl From<AssentError> for Failure {
    fn from(error: AssentError) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

impl Engine {
    fn request(&self, body: Vec<u8>) -> HttpRequest {
        self.request_to(BATCH_PATH, body)
    }

    /// A POST of `body` to the collector's `path`, with the write key.
    pub(crate) fn request_to(&self, path: &str, body: Vec<u8>) -> HttpRequest {
        let key = self.write_key.lock().expect("write key lock").clone();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
        let mut headers = std::collections::HashMap::from([
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Authorization".to_owned(), format!("Basic {auth}")),
        ]);
        let body = if body.len() > GZIP_ABOVE_BYTES {
            headers.insert("Content-Encoding".to_owned(), "gzip".to_owned());
            gzip(&body)
        } else {
            body
        };
        HttpRequest {
            url: format!("{}{path}", self.settings.collector_url),
            headers,
            body,
        }
    }

    /// Sends entries as one batch (halving on 413) and settles them in the queue.
    fn send(&self, items: &[Item], result: &mut FlushResult) -> Result<(), Failure> {
        let body = envelope(items, self.clock.now());
        let response = self.transport.post(self.request(body))?;
        match Verdict::of(&response, SystemTime::now()) {
            Verdict::Acknowledged => {
                let answer: BatchResponse =
                    serde_json::from_slice(&response.body).unwrap_or_else(|_| {
                        log::warn!("collector acknowledged a batch with an unreadable body");
                        BatchResponse::default()
                    });
                for r in &answer.rejected {
                    log::warn!(
                        "collector rejected event {} ({:?}): {}",
                        r.message_id.as_deref().unwrap_or("?"),
                        r.code,
                        r.reason
                    );
                }
                self.settle(items)?;
                result.accepted += answer.accepted;
                result.duplicates += answer.duplicates;
                result.rejected += answer.rejected.len() as u32;
                self.stats
                    .rejected
                    .fetch_add(answer.rejected.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Verdict::Split if items.len() > 1 => {
                let (left, right) = items.split_at(items.len() / 2);
                self.send(left, result)?;
                self.send(right, result)
            }
            Verdict::Split | Verdict::Refused => {
                log::warn!(
                    "collector refused a batch of {} entries ({})",
                    items.len(),
                    response.status
                );
                self.settle(items)?;
                result.rejected += items.len() as u32;
                self.stats
                    .rejected
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Verdict::Unauthorized => {
                log::warn!(
                    "collector refused the write key ({}); uploads paused",
                    response.status
                );
                self.signal.lock().expect("signal lock").auth_blocked = true;
                Err(AssentError::Unauthorized.into())
            }
            Verdict::Retry { after } => Err(Failure {
                error: match (response.status, after) {
                    (429, Some(d)) => AssentError::RateLimited {
                        retry_after_ms: d.as_millis() as u64,
                    },
                    _ => AssentError::Network {
                        reason: format!("collector answered {}", response.status),
                    },
                },
                retry_after: after,
            }),
        }
    }

    fn settle(&self, items: &[Item]) -> Result<()> {
        let seqs: Vec<u64> = items.iter().map(|i| i.seq).collect();
        self.queue.lock().expect("queue lock").remove(&seqs)?;
        Ok(())
    }

    /// Sends everything queued when called, batch after batch, until done or an attempt
    /// fails. One sender at a time.
    pub(crate) fn send_pending(&self) -> Result<FlushResult, Failure> {
        let _one_sender = self.send_lock.lock().expect("send lock");
        if self.signal.lock().expect("signal lock").auth_blocked {
            return Err(AssentError::Unauthorized.into());
        }
        let budget = self.settings.max_batch_bytes - ENVELOPE_OVERHEAD;
        let mut result = FlushResult::default();
        let last = self.queue.lock().expect("queue lock").last_seq();
        loop {
            let mut items = self
                .queue
                .lock()
                .expect("queue lock")
                .peek(budget)
                .map_err(AssentError::from)?;
            items.retain(|i| i.seq <= last);
            cap_consent_records(&mut items);
            if items.is_empty() {
                break;
            }
            self.send(&items, &mut result)?;
        }
        result.remaining = self.queue.lock().expect("queue lock").len() as u64;
        Ok(result)
    }

    /// The uploader thread's body: waits (without periodic wake-ups) until `flush_at`
    /// entries are queued or the oldest has waited `flush_interval`, and no backoff or
    /// auth block is in force; then sends.
    pub(crate) fn run_uploader(&self) {
        loop {
            {
                let mut s = self.signal.lock().expect("signal lock");
                loop {
                    s.wakeups += 1;
                    self.wake_pending.store(false, Ordering::Relaxed);
                    if s.shutdown {
                        return;
                    }
                    let queued = self.queue.lock().expect("queue lock").len();
                    let now = Instant::now();
                    if queued == 0 || s.auth_blocked {
                        s.pending_since = None;
                        s = self.cv.wait(s).expect("signal lock");
                        continue;
                    }
                    if let Some(at) = s.retry_at.filter(|at| *at > now) {
                        s = self.cv.wait_timeout(s, at - now).expect("signal lock").0;
                        continue;
                    }
                    let since = *s.pending_since.get_or_insert(now);
                    let due = since + self.settings.flush_interval;
                    if queued >= self.settings.flush_at || s.retry_at.is_some() || now >= due {
                        break;
                    }
                    s = self.cv.wait_timeout(s, due - now).expect("signal lock").0;
                }
            }
            let outcome = self.send_pending();
            let mut s = self.signal.lock().expect("signal lock");
            match outcome {
                Ok(_) => {
                    s.attempt = 0;
                    s.retry_at = None;
                    s.pending_since = None;
                }
                Err(failure) => {
                    if !matches!(failure.error, AssentError::Unauthorized) {
                        log::info!("upload failed, will retry: {}", failure.error);
                    }
                    let delay = failure.retry_after.unwrap_or_else(|| {
                        let mut rng = self.rng.lock().expect("rng lock");
                        backoff(
                            s.attempt,
                            self.settings.retry_base,
                            self.settings.retry_max,
                            &mut rng,
                        )
                    });
                    s.attempt = s.attempt.saturating_add(1);
                    s.retry_at = Some(Instant::now() + delay);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Class;
    use assent_protocol::Purpose;

    fn response(status: u16, retry_after: Option<&str>) -> HttpResponse {
        HttpResponse {
            status,
            retry_after: retry_after.map(str::to_owned),
            body: Vec::new(),
        }
    }

    #[test]
    fn verdicts_follow_the_status() {
        let now = SystemTime::now();
        assert_eq!(
            Verdict::of(&response(200, None), now),
            Verdict::Acknowledged
        );
        assert_eq!(Verdict::of(&response(413, None), now), Verdict::Split);
        assert_eq!(Verdict::of(&response(400, None), now), Verdict::Refused);
        assert_eq!(
            Verdict::of(&response(401, None), now),
            Verdict::Unauthorized
        );
        assert_eq!(
            Verdict::of(&response(403, None), now),
            Verdict::Unauthorized
        );
        assert_eq!(
            Verdict::of(&response(429, Some("7")), now),
            Verdict::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            Verdict::of(&response(503, None), now),
            Verdict::Retry { after: None }
        );
        assert_eq!(
            Verdict::of(&response(408, None), now),
            Verdict::Retry { after: None }
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_cap() {
        let mut rng = fastrand::Rng::with_seed(42);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 0..40 {
            let ceiling = (100u64 << attempt.min(20)).min(10_000);
            let samples: Vec<u64> = (0..200)
                .map(|_| backoff(attempt, base, max, &mut rng).as_millis() as u64)
                .collect();
            assert!(samples.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Full jitter spreads over the whole range, down to near zero.
            assert!(
                samples.iter().any(|d| *d < ceiling / 4),
                "attempt {attempt}"
            );
            assert!(
                samples.iter().any(|d| *d > ceiling / 2),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn the_envelope_splits_events_and_consent_and_stamps_sent_at() {
        let items = vec![
            Item {
                seq: 1,
                class: Class::Consent,
                payload: br#"{"consentId":"c"}"#.to_vec(),
            },
            Item {
                seq: 2,
                class: Class::Event(Purpose::Analytics),
                payload: br#"{"messageId":"a"}"#.to_vec(),
            },
            Item {
                seq: 3,
                class: Class::Event(Purpose::Necessary),
                payload: br#"{"messageId":"b"}"#.to_vec(),
            },
        ];
        let body = envelope(&items, Timestamp::from_unix_millis(0));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["batch"].as_array().unwrap().len(), 2);
        assert_eq!(v["consent"][0]["consentId"], "c");
        assert_eq!(v["sentAt"], "1970-01-01T00:00:00.000Z");
        let empty: serde_json::Value =
            serde_json::from_slice(&envelope(&[], Timestamp::from_unix_millis(0))).unwrap();
        assert_eq!(empty["batch"], serde_json::json!([]));
    }

    #[test]
    fn a_batch_carries_at_most_the_collectors_number_of_consent_records() {
        let item = |seq: u64, consent: bool| Item {
            seq,
            class: if consent {
                Class::Consent
            } else {
                Class::Event(Purpose::Analytics)
            },
            payload: b"{}".to_vec(),
        };
        let most = assent_protocol::MAX_CONSENT_RECORDS_PER_BATCH as u64;
        // Events and consent records interleaved: the batch ends before the record too many.
        let mut items: Vec<Item> = (1..=3 * most).map(|s| item(s, s % 2 == 0)).collect();
        cap_consent_records(&mut items);
        let records = items.iter().filter(|i| i.class == Class::Consent).count() as u64;
        assert_eq!(records, most);
        assert_eq!(items.last().unwrap().seq, 2 * most + 1);
        let mut few: Vec<Item> = (1..=10).map(|s| item(s, true)).collect();
        cap_consent_records(&mut few);
        assert_eq!(few.len(), 10);
    }
}
