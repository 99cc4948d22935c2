//! Live chat: the chat state machine (assistant, requesting, intervened, history), the
//! built-in assistant, numbered chat events with catch-up, and the History sweep.

pub mod assistant;
pub mod events;
pub mod graphql;
pub mod listing;
pub mod service;
pub mod stream;
pub mod sweeper;
