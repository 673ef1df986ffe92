//! I/O: sockets, capture threads, the sender pool, the control socket and daemon wiring.

pub mod control;
pub mod daemon;
pub mod iface;
pub mod stats;
pub mod sys;
