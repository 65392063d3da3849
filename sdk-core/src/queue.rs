//! The on-disk queue: an append-only log split into segment files.
//!
//! Each record is `[len: u32][crc32: u32][kind: u8][body]`, little-endian, with `len`
//! counting `kind` and `body` and the CRC covering the same bytes. A record is written
//! with one `write` call before `append` returns, so it survives a `kill -9` of the
//! process (the kernel holds it). Records:
//! - `ENTRY`: `[seq: u64][class: u8][payload]`, one queued event or consent record;
//! - `DELETE`: `[seq: u64]*`, entries acknowledged, purged or dropped.
//!
//! Opening replays every segment in order. A record cut short at the end of a segment (a
//! torn write) is cut off the file; a record whose checksum fails in the middle is skipped
//! and counted. Neither stops the queue from opening.
//!
//! A segment is deleted once every entry in it is deleted and it is the oldest, so delete
//! records never lose their target. A mostly-dead oldest segment has its live entries
//! copied forward, with the same sequence numbers, and is then deleted.
use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

#[cfg(unix)]
use std::os::unix::fs::FileExt;

use assent_protocol::Purpose;

use crate::storage;

const MAGIC: &[u8; 8] = b"ASSENTQ1";
const HEADER_LEN: u64 = MAGIC.len() as u64;
const RECORD_HEADER: usize = 8;
const KIND_ENTRY: u8 = 1;
const KIND_DELETE: u8 = 2;
/// Largest record accepted on replay; anything bigger is a corrupt length.
const MAX_RECORD: usize = 16 * 1024 * 1024;
/// A segment is closed and a new one started past this size.
pub(crate) const SEGMENT_TARGET: u64 = 4 * 1024 * 1024;

/// What a queued entry is: an event of some purpose, or a consent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Event(Purpose),
    Consent,
}

impl Class {
    const CONSENT_CODE: u8 = 0xff;

    fn code(self) -> u8 {
        match self {
            Class::Event(p) => p.code(),
            Class::Consent => Self::CONSENT_CODE,
        }
    }

    fn from_code(code: u8) -> Option<Class> {
        if code == Self::CONSENT_CODE {
            Some(Class::Consent)
        } else {
            Purpose::from_code(code).map(Class::Event)
        }
    }

    /// Whether the bound on queued events may drop it.
    fn droppable(self) -> bool {
        matches!(self, Class::Event(p) if p != Purpose::Necessary)
    }
}

#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u64,
    /// Offset of the payload in the segment file.
    offset: u64,
    len: u32,
    class: Class,
}

#[derive(Debug)]
struct Segment {
    file: File,
    len: u64,
    live: usize,
    live_bytes: u64,
}

/// One entry handed out for upload.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub seq: u64,
    pub class: Class,
    pub payload: Vec<u8>,
}

/// What an append did besides appending.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// False when the new entry itself was dropped by the bound.
    pub stored: bool,
    /// Entries dropped to respect the bound (the new one included, when not stored).
    pub dropped: usize,
}

/// Counters of what went wrong while replaying.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayReport {
    pub torn_tails: usize,
    pub corrupt_records: usize,
}

#[derive(Debug)]
pub(crate) struct Queue {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    index: BTreeMap<u64, Location>,
    next_seq: u64,
    events: usize,
    max_events: usize,
    segment_target: u64,
    buf: Vec<u8>,
    pub report: ReplayReport,
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, replaying what is there.
    pub(crate) fn open(dir: &Path, max_events: usize) -> io::Result<Queue> {
        Queue::open_with_segment_target(dir, max_events, SEGMENT_TARGET)
    }

    pub(crate) fn open_with_segment_target(
        dir: &Path,
        max_events: usize,
        segment_target: u64,
    ) -> io::Result<Queue> {
        fs::create_dir_all(dir)?;
        let mut q = Queue {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            next_seq: 1,
            events: 0,
            max_events,
            segment_target,
            buf: Vec::with_capacity(1024),
            report: ReplayReport::default(),
        };
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".q")?, 16).ok()
            })
            .collect();
        ids.sort_unstable();
        for id in ids {
            q.replay_segment(id)?;
        }
        if q.segments.is_empty() {
            q.start_segment(1)?;
        }
        q.events = q
            .index
            .values()
            .filter(|l| l.class != Class::Consent)
            .count();
        q.compact()?;
        Ok(q)
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}.q"))
    }

    fn replay_segment(&mut self, id: u64) -> io::Result<()> {
        let path = self.segment_path(id);
        let data = fs::read(&path)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
            // Created but its header never made it, or not ours: start it afresh.
            if data.iter().any(|&b| b != 0) && data.len() >= MAGIC.len() {
                self.report.corrupt_records += 1;
                log::warn!("queue segment with a bad header set aside");
                fs::rename(&path, path.with_extension("corrupt"))?;
                return Ok(());
            }
            file.set_len(0)?;
            file.write_all_at(MAGIC, 0)?;
            self.segments.insert(
                id,
                Segment {
                    file,
                    len: HEADER_LEN,
                    live: 0,
                    live_bytes: 0,
                },
            );
            return Ok(());
        }
        self.segments.insert(
            id,
            Segment {
                file,
                len: HEADER_LEN,
                live: 0,
                live_bytes: 0,
            },
        );
        let mut pos = MAGIC.len();
        let mut good_end = pos;
        while pos < data.len() {
            let rest = &data[pos..];
            if rest.len() < RECORD_HEADER {
                self.report.torn_tails += 1;
                break;
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
            if len == 0 || len > MAX_RECORD {
                // A length we cannot trust: nothing after it can be framed.
                self.report.torn_tails += 1;
                break;
            }
            if rest.len() < RECORD_HEADER + len {
                self.report.torn_tails += 1;
                break;
            }
            let body = &rest[RECORD_HEADER..RECORD_HEADER + len];
            pos += RECORD_HEADER + len;
            if crc32fast::hash(body) != crc {
                if pos == data.len() {
                    self.report.torn_tails += 1;
                    break;
                }
                self.report.corrupt_records += 1;
                log::warn!("queue record with a bad checksum skipped");
                good_end = pos;
                continue;
            }
            good_end = pos;
            let record_start = (pos - len) as u64;
            self.apply(id, record_start, body);
        }
        if good_end < data.len() {
            log::warn!("torn write at the end of a queue segment cut off");
            let seg = self.segments.get_mut(&id).expect("inserted above");
            seg.file.set_len(good_end as u64)?;
        }
        self.segments.get_mut(&id).expect("inserted above").len = good_end as u64;
        Ok(())
    }

    /// Applies one replayed record. `start` is the offset of its kind byte.
    fn apply(&mut self, segment: u64, start: u64, body: &[u8]) {
        match body[0] {
            KIND_ENTRY if body.len() >= 10 => {
                let seq = u64::from_le_bytes(body[1..9].try_into().unwrap());
                let Some(class) = Class::from_code(body[9]) else {
                    self.report.corrupt_records += 1;
                    return;
                };
                let loc = Location {
                    segment,
                    offset: start + 10,
                    len: (body.len() - 10) as u32,
                    class,
                };
                self.insert_location(seq, loc);
                self.next_seq = self.next_seq.max(seq + 1);
            }
            KIND_DELETE if (body.len() - 1).is_multiple_of(8) => {
                for chunk in body[1..].chunks_exact(8) {
                    let seq = u64::from_le_bytes(chunk.try_into().unwrap());
                    self.next_seq = self.next_seq.max(seq + 1);
                    self.forget(seq);
                }
            }
            _ => self.report.corrupt_records += 1,
        }
    }

    fn insert_location(&mut self, seq: u64, loc: Location) {
        if let Some(old) = self.index.insert(seq, loc) {
            // A copy made by compaction: the older copy no longer counts.
            if let Some(seg) = self.segments.get_mut(&old.segment) {
                seg.live -= 1;
                seg.live_bytes -= u64::from(old.len);
            }
        }
        let seg = self
            .segments
            .get_mut(&loc.segment)
            .expect("segment registered before replay");
        seg.live += 1;
        seg.live_bytes += u64::from(loc.len);
    }

    fn forget(&mut self, seq: u64) -> Option<Location> {
        let loc = self.index.remove(&seq)?;
        if let Some(seg) = self.segments.get_mut(&loc.segment) {
            seg.live -= 1;
            seg.live_bytes -= u64::from(loc.len);
        }
        Some(loc)
    }

    fn start_segment(&mut self, id: u64) -> io::Result<()> {
        let path = self.segment_path(id);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all(MAGIC)?;
        storage::sync_dir(&self.dir)?;
        self.segments.insert(
            id,
            Segment {
                file,
                len: HEADER_LEN,
                live: 0,
                live_bytes: 0,
            },
        );
        Ok(())
    }

    fn active_id(&self) -> u64 {
        *self
            .segments
            .keys()
            .next_back()
            .expect("there is always an active segment")
    }

    /// Writes the record in `self.buf` (already framed) to the active segment. On a short
    /// or failed write the segment is cut back, so a failure leaves no half record.
    fn write_record(&mut self) -> io::Result<(u64, u64)> {
        let mut id = self.active_id();
        if self.segments[&id].len >= self.segment_target {
            id += 1;
            self.start_segment(id)?;
        }
        let seg = self.segments.get_mut(&id).expect("active segment exists");
        let start = seg.len;
        if let Err(e) = seg.file.write_all_at(&self.buf, start) {
            let _ = seg.file.set_len(start);
            return Err(e);
        }
        seg.len += self.buf.len() as u64;
        Ok((id, start))
    }

    fn frame(&mut self, kind: u8, fill: impl FnOnce(&mut Vec<u8>)) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; RECORD_HEADER]);
        self.buf.push(kind);
        fill(&mut self.buf);
        let len = (self.buf.len() - RECORD_HEADER) as u32;
        let crc = crc32fast::hash(&self.buf[RECORD_HEADER..]);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
    }

    fn write_entry(&mut self, seq: u64, class: Class, payload: &[u8]) -> io::Result<()> {
        self.frame(KIND_ENTRY, |b| {
            b.extend_from_slice(&seq.to_le_bytes());
            b.push(class.code());
            b.extend_from_slice(payload);
        });
        let (segment, start) = self.write_record()?;
        let loc = Location {
            segment,
            offset: start + RECORD_HEADER as u64 + 10,
            len: payload.len() as u32,
            class,
        };
        self.insert_location(seq, loc);
        Ok(())
    }

    /// Appends one entry, durable against a crash of the process when this returns.
    /// Past the bound on events, the oldest droppable event goes first; consent records
    /// are never dropped and never count against the bound.
    pub(crate) fn append(&mut self, class: Class, payload: &[u8]) -> io::Result<Appended> {
        let mut outcome = Appended {
            stored: true,
            dropped: 0,
        };
        if class != Class::Consent && self.events >= self.max_events {
            let victim = self
                .index
                .iter()
                .find(|(_, l)| l.class.droppable())
                .map(|(s, _)| *s)
                .or_else(|| {
                    if class.droppable() {
                        None
                    } else {
                        // Only necessary events are queued: the oldest one makes room.
                        self.index
                            .iter()
                            .find(|(_, l)| l.class != Class::Consent)
                            .map(|(s, _)| *s)
                    }
                });
            match victim {
                Some(seq) => {
                    self.remove(&[seq])?;
                    outcome.dropped += 1;
                }
                None => {
                    return Ok(Appended {
                        stored: false,
                        dropped: 1,
                    });
                }
            }
        }
        let seq = self.next_seq;
        self.write_entry(seq, class, payload)?;
        self.next_seq += 1;
        if class != Class::Consent {
            self.events += 1;
        }
        Ok(outcome)
    }

    /// Deletes entries (acknowledged, purged or dropped). Unknown sequence numbers are
    /// ignored: an entry may have been purged while its batch was in flight.
    pub(crate) fn remove(&mut self, seqs: &[u64]) -> io::Result<usize> {
        let present: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|s| self.index.contains_key(s))
            .collect();
        if present.is_empty() {
            return Ok(0);
        }
        self.frame(KIND_DELETE, |b| {
            for s in &present {
                b.extend_from_slice(&s.to_le_bytes());
            }
        });
        self.write_record()?;
        for s in &present {
            if let Some(loc) = self.forget(*s) {
                if loc.class != Class::Consent {
                    self.events -= 1;
                }
            }
        }
        self.compact()?;
        Ok(present.len())
    }

    /// Deletes every queued event whose class matches. Returns how many.
    pub(crate) fn purge(&mut self, matches: impl Fn(Class) -> bool) -> io::Result<usize> {
        let seqs: Vec<u64> = self
            .index
            .iter()
            .filter(|(_, l)| matches(l.class))
            .map(|(s, _)| *s)
            .collect();
        self.remove(&seqs)
    }

    /// Reclaims space: deletes dead oldest segments, and copies the few live entries of
    /// mostly-dead ones forward first.
    fn compact(&mut self) -> io::Result<()> {
        loop {
            let (&oldest, seg) = self.segments.iter().next().expect("never empty");
            if oldest == self.active_id() {
                return Ok(());
            }
            if seg.live > 0 {
                if seg.live_bytes * 4 > seg.len {
                    return Ok(());
                }
                let movers: Vec<(u64, Location)> = self
                    .index
                    .iter()
                    .filter(|(_, l)| l.segment == oldest)
                    .map(|(s, l)| (*s, *l))
                    .collect();
                for (seq, loc) in movers {
                    let payload = self.read(&loc)?;
                    self.write_entry(seq, loc.class, &payload)?;
                }
            }
            let path = self.segment_path(oldest);
            self.segments.remove(&oldest);
            fs::remove_file(path)?;
        }
    }

    fn read(&self, loc: &Location) -> io::Result<Vec<u8>> {
        let mut payload = vec![0u8; loc.len as usize];
        self.segments[&loc.segment]
            .file
            .read_exact_at(&mut payload, loc.offset)?;
        Ok(payload)
    }

    /// The oldest entries, in order, whose payloads add up to at most `max_bytes`
    /// (at least one entry when the queue is not empty).
    pub(crate) fn peek(&self, max_bytes: usize) -> io::Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut total = 0usize;
        for (&seq, loc) in &self.index {
            let size = loc.len as usize + 1;
            if !items.is_empty() && total + size > max_bytes {
                break;
            }
            total += size;
            items.push(Item {
                seq,
                class: loc.class,
                payload: self.read(loc)?,
            });
        }
        Ok(items)
    }

    /// The newest entry's sequence number (0 when empty).
    pub(crate) fn last_seq(&self) -> u64 {
        self.index.keys().next_back().copied().unwrap_or(0)
    }

    /// Entries queued, consent records included.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Events queued, consent records excluded.
    #[cfg(test)]
    pub(crate) fn event_count(&self) -> usize {
        self.events
    }

    #[cfg(test)]
    fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    const A: Class = Class::Event(Purpose::Analytics);
    const N: Class = Class::Event(Purpose::Necessary);
    const AD: Class = Class::Event(Purpose::Advertising);

    fn payloads(q: &Queue) -> Vec<String> {
        q.peek(usize::MAX)
            .unwrap()
            .into_iter()
            .map(|i| String::from_utf8(i.payload).unwrap())
            .collect()
    }

    #[test]
    fn entries_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = Queue::open(dir.path(), 100).unwrap();
            for i in 0..10 {
                q.append(A, format!("e{i}").as_bytes()).unwrap();
            }
            let first_three: Vec<u64> = q
                .peek(usize::MAX)
                .unwrap()
                .iter()
                .take(3)
                .map(|i| i.seq)
                .collect();
            q.remove(&first_three).unwrap();
        }
        let q = Queue::open(dir.path(), 100).unwrap();
        assert_eq!(
            payloads(&q),
            (3..10).map(|i| format!("e{i}")).collect::<Vec<_>>()
        );
        assert_eq!(q.event_count(), 7);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_queue_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = Queue::open(dir.path(), 100).unwrap();
            q.append(A, b"kept").unwrap();
            q.append(A, b"torn-record").unwrap();
        }
        let seg = dir.path().join(format!("{:016x}.q", 1));
        let whole = fs::read(&seg).unwrap();
        let last_record = RECORD_HEADER + 10 + b"torn-record".len();
        for cut in 1..last_record {
            fs::write(&seg, &whole[..whole.len() - cut]).unwrap();
            let mut q = Queue::open(dir.path(), 100).unwrap();
            assert_eq!(payloads(&q), vec!["kept"], "cut {cut}");
            assert_eq!(q.report.torn_tails, 1, "cut {cut}");
            q.append(A, b"after").unwrap();
            drop(q);
            let q = Queue::open(dir.path(), 100).unwrap();
            assert_eq!(payloads(&q), vec!["kept", "after"], "cut {cut}");
            assert_eq!(q.report, ReplayReport::default());
        }
    }

    #[test]
    fn garbage_at_the_tail_and_a_flipped_bit_in_the_middle_do_not_poison_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = Queue::open(dir.path(), 100).unwrap();
            for p in ["one", "two", "three"] {
                q.append(A, p.as_bytes()).unwrap();
            }
        }
        let seg = dir.path().join(format!("{:016x}.q", 1));
        let mut bytes = fs::read(&seg).unwrap();
        // Flip a bit inside the payload of "two" (second record).
        let pos = bytes.windows(3).position(|w| w == b"two").unwrap();
        bytes[pos] ^= 0x01;
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
        fs::write(&seg, &bytes).unwrap();
        let q = Queue::open(dir.path(), 100).unwrap();
        assert_eq!(payloads(&q), vec!["one", "three"]);
        assert_eq!(
            q.report,
            ReplayReport {
                torn_tails: 1,
                corrupt_records: 1
            }
        );
    }

    #[test]
    fn an_empty_or_headerless_segment_is_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("{:016x}.q", 5)), b"ASS").unwrap();
        let mut q = Queue::open(dir.path(), 100).unwrap();
        q.append(A, b"x").unwrap();
        drop(q);
        assert_eq!(payloads(&Queue::open(dir.path(), 100).unwrap()), vec!["x"]);
    }

    #[test]
    fn the_bound_drops_the_oldest_optional_event_never_consent() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), 3).unwrap();
        q.append(N, b"n1").unwrap();
        q.append(Class::Consent, b"c1").unwrap();
        q.append(A, b"a1").unwrap();
        q.append(AD, b"ad1").unwrap();
        let out = q.append(A, b"a2").unwrap();
        assert_eq!(
            out,
            Appended {
                stored: true,
                dropped: 1
            }
        );
        assert_eq!(payloads(&q), vec!["n1", "c1", "ad1", "a2"]);
        q.append(N, b"n2").unwrap();
        q.append(N, b"n3").unwrap();
        assert_eq!(payloads(&q), vec!["n1", "c1", "n2", "n3"]);
        // Only necessary events left: an optional one is refused, a necessary one
        // pushes out the oldest necessary.
        assert_eq!(
            q.append(A, b"a3").unwrap(),
            Appended {
                stored: false,
                dropped: 1
            }
        );
        q.append(N, b"n4").unwrap();
        assert_eq!(payloads(&q), vec!["c1", "n2", "n3", "n4"]);
        for i in 0..10 {
            q.append(Class::Consent, format!("c{}", i + 2).as_bytes())
                .unwrap();
        }
        assert_eq!(q.event_count(), 3);
        assert_eq!(q.len(), 14);
    }

    #[test]
    fn purge_removes_only_the_matching_purpose_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = Queue::open(dir.path(), 100).unwrap();
            q.append(A, b"a").unwrap();
            q.append(AD, b"ad").unwrap();
            q.append(Class::Consent, b"c").unwrap();
            assert_eq!(q.purge(|c| c == AD).unwrap(), 1);
        }
        assert_eq!(
            payloads(&Queue::open(dir.path(), 100).unwrap()),
            vec!["a", "c"]
        );
    }

    #[test]
    fn segments_roll_and_dead_ones_are_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open_with_segment_target(dir.path(), 10_000, 1024).unwrap();
        let keep = q.append(N, b"long-lived necessary event").unwrap();
        assert!(keep.stored);
        for round in 0..20 {
            let mut seqs = Vec::new();
            for i in 0..20 {
                q.append(
                    A,
                    format!("r{round}-{i}-padding-padding-padding").as_bytes(),
                )
                .unwrap();
            }
            for item in q.peek(usize::MAX).unwrap() {
                if item.class == A {
                    seqs.push(item.seq);
                }
            }
            q.remove(&seqs).unwrap();
        }
        // The long-lived event was copied forward; old segments are gone.
        assert!(q.segment_count() <= 3, "{} segments", q.segment_count());
        assert_eq!(payloads(&q), vec!["long-lived necessary event"]);
        drop(q);
        let q = Queue::open_with_segment_target(dir.path(), 10_000, 1024).unwrap();
        assert_eq!(payloads(&q), vec!["long-lived necessary event"]);
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert!(files <= 3, "{files} files");
    }

    #[test]
    fn a_failed_write_leaves_no_half_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), 100).unwrap();
        q.append(A, b"ok").unwrap();
        // Simulate a short write: append half a record by hand, as a crash mid-write would.
        let seg = dir.path().join(format!("{:016x}.q", 1));
        let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(&[20, 0, 0, 0, 1, 2]).unwrap();
        drop(q);
        let mut q = Queue::open(dir.path(), 100).unwrap();
        q.append(A, b"next").unwrap();
        drop(q);
        assert_eq!(
            payloads(&Queue::open(dir.path(), 100).unwrap()),
            vec!["ok", "next"]
        );
    }

    #[test]
    fn peek_respects_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), 100).unwrap();
        for _ in 0..10 {
            q.append(A, &[b'x'; 99]).unwrap();
        }
        assert_eq!(q.peek(500).unwrap().len(), 5);
        assert_eq!(q.peek(1).unwrap().len(), 1);
    }
}
