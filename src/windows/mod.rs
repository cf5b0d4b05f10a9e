//! What a counter shard stores: the schema (`schema`), exactly-once apply,
//! rollups, retention and reads over SQLite (`counter_store`), visitor
//! sketches (`sketch`) and the daily salts (`salt_store`).

pub mod counter_store;
pub mod salt_store;
pub mod schema;
pub mod sketch;
