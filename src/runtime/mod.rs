//! I/O: sockets, capture threads, the sender pool, the control socket and daemon wiring.

pub mod classify;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod iface;
pub mod links;
pub mod privs;
pub mod stats;
pub mod sys;
