//! The payroll-deduction remittance gateway of a state child support agency.
//!
//! Modules in reading order; arrows point one way: `grpc`/`cli` → `app` → `domain`,
//! `app` → `storage`.

/// The pure core: money, ids, months, the distribution rule, registry rows.
pub mod domain;
