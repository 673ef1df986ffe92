//! I/O: sockets, capture threads, the sender pool, the control socket and daemon wiring.

pub mod capture;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod iface;
pub mod links;
pub mod privs;
pub mod shared;
pub mod stats;
pub mod sys;
