//! Protocol logic with no I/O: time is always an argument, results are returned as events
//! for the runtime to carry out.

pub mod family;
pub mod fib;
pub mod filter;
pub mod membership;
pub mod pacer;
pub mod querier;
pub mod reporter;
pub mod snooper;
pub mod upstream;

/// Index of a downstream interface in the configured list. Stable for the daemon's life,
/// even while the interface itself is away.
pub type IfaceId = usize;
