//! Any bytes as a remittance file of format Csv: no panic, and the harness's invariants hold.
#![no_main]

use gateway::formats::{fuzz, RemittanceFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| fuzz::remittance(RemittanceFormat::Csv, bytes));
