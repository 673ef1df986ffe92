//! snoopcast: IGMP snooping and multicast-to-unicast forwarding for dumb switches and VPN taps.

pub mod cli;
pub mod completions;
pub mod config;
pub mod config_file;
pub mod core;
pub mod doctor;
pub mod openmetrics;
pub mod runtime;
pub mod status;
pub mod wire;
