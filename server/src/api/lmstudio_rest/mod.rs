//! LM Studio's REST API: v0 (`v0.rs`), v1 model management (`manage.rs`)
//! and getting models (`downloads.rs`).

pub mod downloads;
pub mod manage;
pub mod v0;
