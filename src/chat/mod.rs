//! The chatroom, without sockets.

pub mod form;
pub mod history;
pub mod ids;
pub mod limiter;
pub mod message;
