//! A room: its Durable Object and its storage.

pub mod contract;
mod generate;
pub mod hints;
pub mod object;
pub mod queries;
pub mod semantic;
pub mod store;

pub use generate::Timeouts;
