//! `make fuzz`: the batch parser (envelope, events, consent records, Segment consent
//! stamps) and the bounded gzip inflater must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = assent_collector::ingest::parse_only(data);
    let _ = assent_collector::http::inflate_limited(data, 64 * 1024);
});
