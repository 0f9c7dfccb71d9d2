//! A polling POST body: split into records (`engineio::payload::split`), each decoded with
//! `parse_polling_record`, as the server handles it. Checks that joining the records gives the
//! body back and that the record count is the separator count plus one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_edge::engineio::packet;
use sio_edge::engineio::payload::{self, SEPARATOR};

fuzz_target!(|data: &[u8]| {
    let records: Vec<&[u8]> = payload::split(data).collect();
    assert_eq!(
        records.len(),
        data.iter().filter(|&&b| b == SEPARATOR).count() + 1
    );
    for r in &records {
        let _ = packet::parse_polling_record(r);
    }
    let mut joined = Vec::with_capacity(data.len());
    payload::join(records, &mut joined);
    assert_eq!(joined, data);
});
