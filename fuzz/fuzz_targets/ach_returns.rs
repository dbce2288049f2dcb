//! Any bytes as the bank's ACH return file: no panic, and the harness's invariants hold.
#![no_main]

use gateway::formats::fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| fuzz::ach_returns(bytes));
