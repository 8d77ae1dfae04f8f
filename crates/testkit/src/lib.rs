//! Test support: real databases for tests, and a tiny domain (a tally) to exercise the kernel.
//!
//! PostgreSQL tests use the database named by `MSA_TEST_DATABASE_URL` (the test command creates a
//! throwaway one per run), each test in a schema of its own. When no PostgreSQL answers, a test
//! skips with a message, except under `CI=true`, where it fails: CI must never pass by skipping.

pub mod databases;
pub mod tally;

pub use databases::{postgres_database, postgres_url, TestStores};
