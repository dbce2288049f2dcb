//! Rows of the case registry import (`case-registry.md`), parsed and checked.
