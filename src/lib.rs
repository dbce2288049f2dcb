//! The payroll-deduction remittance gateway of a state child support agency.
//!
//! Modules in reading order; arrows point one way: `grpc`/`console`/`cli` → `app` → `domain`,
//! `app` → `storage`.

/// Use cases over the domain and the store.
pub mod app;
/// The command-line client (and `serve`).
pub mod cli;
/// The web console for the back office and small employers (HTML over HTTP/1.1).
pub mod console;
/// Named points where a reliability harness can have the server kill itself.
pub mod crash_points;
/// The pure core: money, ids, months, the distribution rule, registry rows.
pub mod domain;
/// Bytes to records: the file formats the gateway reads.
pub mod formats;
/// The gRPC transport: thin handlers, health, reflection.
pub mod grpc;
/// Returning memory a large, rare operation freed to the operating system.
pub mod memory;
/// Prometheus metrics.
pub mod metrics;
/// The metrics HTTP endpoint.
pub mod metrics_http;
/// Building and running the server.
pub mod startup;
/// Storage behind one trait, on SQLite (embedded default) and PostgreSQL.
pub mod storage;
