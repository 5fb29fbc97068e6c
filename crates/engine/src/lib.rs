//! Background work that needs both storage and gateways: the outbox dispatcher.

pub mod dispatcher;

pub use dispatcher::{run_dispatcher, DispatchOptions};
