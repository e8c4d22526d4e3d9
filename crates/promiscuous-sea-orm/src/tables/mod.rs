//! promiscuous' own tables, as SeaORM entities (created by [`crate::schema`]).

pub mod applied;
pub mod dead_letters;
pub mod outbox;
pub mod outbox_operations;
pub mod processed;
pub mod versions;
