//! A room: its Durable Object and its storage.

pub mod object;
pub mod store;
