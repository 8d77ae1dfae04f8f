//! The notes context's adapters: its read model and its HTTP API.

pub mod http;
pub mod note_list;
