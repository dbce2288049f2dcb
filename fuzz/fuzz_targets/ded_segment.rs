//! Any bytes as the DED addenda of an otherwise valid NACHA CCD+ or CTX entry: the fuzzer
//! spends its effort on the segment's fields, not on getting the records' layout right.
#![no_main]

use gateway::formats::nacha::writer::{write_file, EntryToWrite};
use gateway::formats::{fuzz, RemittanceFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&kind, segment)) = bytes.split_first() else { return };
    // An addenda record holds printable ASCII: other bytes are a refusal the plain NACHA
    // target already explores.
    let segment: String = segment.iter().map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '*' }).collect();
    let sec = if kind % 2 == 0 { "CCD" } else { "CTX" };
    let entry = EntryToWrite { routing: 91_000_019, amount_cents: 10_000, prenote: false, segments: vec![segment] };
    fuzz::remittance(RemittanceFormat::Nacha, &write_file(sec, "ACME", "431234567", &[entry]));
});
