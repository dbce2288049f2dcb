//! Any bytes as a case registry import: no panic, and the harness's invariants hold.
#![no_main]

use gateway::formats::fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| fuzz::registry(bytes));
