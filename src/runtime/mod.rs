//! I/O: sockets, capture threads, the sender pool, the control socket and daemon wiring.

pub mod capture;
pub mod control;
mod ctl;
pub mod daemon;
pub mod datapath;
mod family_io;
pub mod iface;
pub mod links;
pub mod logging;
pub mod metrics;
mod notes;
pub mod notify;
pub mod privs;
pub mod reload;
pub mod shared;
mod snapshot;
pub mod stats;
pub mod sys;
