//! The chatroom, without sockets.

pub mod form;
pub mod message;
