//! Bytes to records: the file formats the gateway reads, each a streaming parser that says
//! where every problem is.

pub mod registry;
