//! Shared harness of the netns end-to-end tests: builds the test LAN, runs the helpers and
//! snoopcast inside it, and tears everything down again (see tests/README.md).
//!
//! ```text
//!  [src] s0 --veth-- up0 [box] dn0 --veth-- p0 [sw: br0, dumb] p1..pN --veth-- eth0 [h1..hN]
//!                            dn1 --veth-- p0 [sw2: br0, dumb] p1..pM --veth-- eth0 [h(N+1)..]
//! ```
//!
//! The second downstream (`LanBuilder::downstream2_hosts`) is optional. Instead of the veth
//! to [src], the upstream can be a tun device `tun0` fed by tests/helpers/tun_source.py
//! (`LanBuilder::tun_upstream`) or a dummy `up0` with the sender on the box itself
//! (`LanBuilder::dummy_upstream`); there is no [src] namespace then. With
//! `LanBuilder::openvpn_tap` the box is an OpenVPN TAP server and its clients the hosts.
//!
//! Every namespace is called `sc<tag>-<pid>-<role>`; interfaces are created directly inside
//! them, so nothing is ever added to the root namespace. `Lan` deletes its namespaces and
//! kills every process left inside them when it is dropped, also while a test panics.
//!
//! Modules: `lan` (the builder, set-up and teardown), `links` (interfaces and kernel groups
//! changed under a running test), `procs` (host agents and senders), `daemon` (snoopcast
//! itself), `status` (`status --json` and the delivery assertions), `cmd` (running
//! commands), `openvpn` (the OpenVPN TAP LAN), `family` (`Fam`: what the IPv4/IPv6 twin
//! tests of tests/twins differ in). Everything is re-exported here, so a test file only
//! needs `use common::*`.
#![allow(dead_code)]

mod cmd;
mod daemon;
mod family;
mod lan;
mod links;
mod openvpn;
mod procs;
mod root;
mod status;

// Not every test binary uses every module.
#[allow(unused_imports)]
pub use cmd::*;
#[allow(unused_imports)]
pub use daemon::*;
#[allow(unused_imports)]
pub use family::*;
#[allow(unused_imports)]
pub use lan::*;
#[allow(unused_imports)]
pub use links::*;
#[allow(unused_imports)]
pub use openvpn::*;
#[allow(unused_imports)]
pub use procs::*;
#[allow(unused_imports)]
pub use root::*;
#[allow(unused_imports)]
pub use status::*;

use std::path::Path;
use std::time::Duration;

/// The daemon under test (see `snoopcast_bin`).
pub const SNOOPCAST: &str = env!("CARGO_BIN_EXE_snoopcast");

/// The snoopcast binary the tests run: SNOOPCAST_E2E_BIN if set (e.g. a release build),
/// else the one cargo built for this test.
pub fn snoopcast_bin() -> String {
    std::env::var("SNOOPCAST_E2E_BIN").unwrap_or_else(|_| SNOOPCAST.to_string())
}
/// tests/helpers, holding host_agent.py and mcast_send.py.
pub const HELPERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers");
/// UDP port the senders and agents use.
pub const PORT: u16 = 5000;
/// The default timeout of a helper command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// Fraction of sent datagrams that must arrive for a stream to count as delivered.
pub const DELIVERY: f64 = 0.98;

/// The python3 that runs the helpers: Debian's /usr/bin/python3 when present.
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}
