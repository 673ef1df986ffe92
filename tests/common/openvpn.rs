//! The OpenVPN TAP LAN (`LanBuilder::openvpn_tap`): the box is an OpenVPN server whose
//! tap0 is snoopcast's downstream, its clients are the hosts (see tests/README.md).
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: openvpn server, tap0 10.8.0.1/24] srv0 192.0.2.1
//!                                                                  |veth
//!         [c1..cN] net0 192.0.2.(10+N) --veth-- pc1..pcN [inet: br0] psrv
//!   cN: openvpn client (persist-tun), tap0 10.8.0.(10+N), MAC 02:5c:00:08:00:(0x10+N)
//! ```
//!
//! Certificates come from tests/helpers/ovpn_pki.sh; the configurations follow
//! examples/openvpn/server.conf and client.conf, with test paths and short timers. The
//! openvpn processes are killed with the LAN (`Lan`'s Drop kills everything in its
//! namespaces; `OpenVpn`'s Drop reaps them).

use super::*;
use std::fs::{self, File};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// The server's tap0 MAC (`lladdr`).
pub const SERVER_TAP_MAC: &str = "02:5c:00:08:00:01";
/// All clients connected (tap0 configured) after the server started.
const CONNECT_WAIT: Duration = Duration::from_secs(20);

/// The openvpn processes of an OpenVPN LAN.
pub(super) struct OpenVpn {
    server: Option<Child>,
    clients: Vec<Child>,
    /// How many times the server was started (names its log).
    server_starts: usize,
}

impl Drop for OpenVpn {
    fn drop(&mut self) {
        for child in self.server.iter_mut().chain(self.clients.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl LanBuilder {
    /// The OpenVPN TAP LAN instead of dn0, the switch and its hosts: the box runs an
    /// OpenVPN server (mode server, no client-to-client, no persist-tun) on tap0 10.8.0.1/24
    /// and `n` clients c1..cn (the LAN's hosts, interface tap0) connect to it through the
    /// namespace `inet`. `build` returns once every client is connected. The veth upstream
    /// only; snoopcast's downstream is then tap0 (`start_snoopcast_with`).
    pub fn openvpn_tap(mut self, n: usize) -> Self {
        assert!((1..=50).contains(&n), "1..=50 OpenVPN clients");
        self.openvpn_clients = n;
        self
    }
}

impl Lan {
    /// Set-up of the OpenVPN LAN after the src <-> box link (called by `Lan::setup`).
    pub(super) fn setup_openvpn(&mut self, n: usize) {
        assert!(
            self.upstream == Upstream::Veth
                && self.box_mode == BoxMode::Snoopcast
                && self.downstreams == 1,
            "openvpn_tap: the veth upstream, snoopcast's box and no dn1 only"
        );
        let bx = self.box_ns();
        let inet = self.add_ns("inet", false);
        let ip = |ns: &str, args: &[&str]| {
            let mut argv = vec!["ip", "-n", ns];
            argv.extend_from_slice(args);
            run(&argv);
        };
        // The "internet": one bridge joining the server and the clients.
        ip(&inet, &["link", "add", "br0", "type", "bridge"]);
        ip(&inet, &["link", "set", "br0", "up"]);
        let mut ports = vec![("psrv".to_string(), bx, "srv0", "192.0.2.1/24".to_string())];
        for i in 1..=n {
            let name = format!("c{i}");
            let ns = self.add_ns(&name, false);
            ports.push((
                format!("pc{i}"),
                ns.clone(),
                "net0",
                format!("192.0.2.{}/24", 10 + i),
            ));
            self.hosts.push(Host {
                name,
                ns,
                ip: format!("10.8.0.{}", 10 + i),
                mac: format!("02:5c:00:08:00:{:02x}", 0x10 + i),
                igmp_version: None,
                downstream: "tap0".to_string(),
            });
        }
        for (port, ns, dev, addr) in &ports {
            run(&[
                "ip", "link", "add", port, "netns", &inet, "type", "veth", "peer", "name", dev,
                "netns", ns,
            ]);
            ip(&inet, &["link", "set", port, "master", "br0"]);
            ip(&inet, &["link", "set", port, "up"]);
            ip(ns, &["addr", "add", addr, "dev", dev]);
            ip(ns, &["link", "set", dev, "up"]);
        }
        self.wait_links_up();

        self.write_openvpn_configs();
        *self.openvpn.lock().unwrap() = Some(OpenVpn {
            server: None,
            clients: Vec::new(),
            server_starts: 0,
        });
        self.start_openvpn_server();
        for i in 1..=n {
            let c = self.host(i).clone();
            let child = self.spawn_openvpn(&c.ns, &format!("{}.conf", c.name), &c.name);
            self.vpn().as_mut().unwrap().clients.push(child);
        }
        self.wait_openvpn_clients(1, CONNECT_WAIT);
    }

    fn vpn(&self) -> std::sync::MutexGuard<'_, Option<OpenVpn>> {
        self.openvpn.lock().unwrap()
    }

    /// The certificates (ovpn_pki.sh), the server's and clients' configurations and the
    /// client-config-dir with each client's fixed tap0 address.
    fn write_openvpn_configs(&self) {
        let (dir, ccd, pki) = (&self.dir, self.dir.join("ccd"), self.dir.join("pki"));
        fs::create_dir_all(&ccd).expect("create ccd");
        let script = format!("{HELPERS}/ovpn_pki.sh");
        let mut argv = vec!["sh", &script, pki.to_str().unwrap()];
        argv.extend(self.hosts.iter().map(|c| c.name.as_str()));
        let out = exec(&argv, Duration::from_secs(30));
        assert!(out.ok(), "ovpn_pki.sh failed: {}{}", out.stdout, out.stderr);

        let p = |f: &str| pki.join(f).display().to_string();
        // As examples/openvpn/server.conf, with test paths and short timers.
        let server = format!(
            "mode server\n\
             tls-server\n\
             proto udp\n\
             port 1194\n\
             dev tap0\n\
             dev-type tap\n\
             disable-dco\n\
             server 10.8.0.0 255.255.255.0\n\
             lladdr {SERVER_TAP_MAC}\n\
             client-config-dir {ccd}\n\
             ca {ca}\n\
             cert {cert}\n\
             key {key}\n\
             dh none\n\
             remote-cert-tls client\n\
             keepalive 1 5\n\
             explicit-exit-notify 1\n\
             verb 3\n",
            ccd = ccd.display(),
            ca = p("ca.crt"),
            cert = p("server.crt"),
            key = p("server.key"),
        );
        fs::write(dir.join("server.conf"), server).unwrap();
        for c in &self.hosts {
            let push = format!("ifconfig-push {} 255.255.255.0\n", c.ip);
            fs::write(ccd.join(&c.name), push).unwrap();
            // As examples/openvpn/client.conf; server-poll-timeout 2 retries quickly while
            // the server is restarting.
            let client = format!(
                "client\n\
                 proto udp\n\
                 remote 192.0.2.1 1194\n\
                 dev tap0\n\
                 dev-type tap\n\
                 disable-dco\n\
                 lladdr {mac}\n\
                 ca {ca}\n\
                 cert {cert}\n\
                 key {key}\n\
                 remote-cert-tls server\n\
                 persist-tun\n\
                 persist-key\n\
                 connect-retry 1 1\n\
                 server-poll-timeout 2\n\
                 verb 3\n",
                mac = c.mac,
                ca = p("ca.crt"),
                cert = p(&format!("{}.crt", c.name)),
                key = p(&format!("{}.key", c.name)),
            );
            fs::write(dir.join(format!("{}.conf", c.name)), client).unwrap();
        }
    }

    /// Runs `openvpn --config <dir>/CONF` in `ns`, output to `<dir>/openvpn-LOG.log`.
    fn spawn_openvpn(&self, ns: &str, conf: &str, log: &str) -> Child {
        let name = format!("openvpn-{log}");
        let log = self.dir.join(format!("{name}.log"));
        self.add_log(&name, &log);
        let file = File::create(&log).expect("create an openvpn log");
        Command::new("ip")
            .args(["netns", "exec", ns, "openvpn", "--config"])
            .arg(self.dir.join(conf))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn openvpn (is it installed? tests/run.sh installs it)")
    }

    /// Starts the OpenVPN server in the box and waits (10 s) until its tap0 is up with
    /// 10.8.0.1/24.
    pub fn start_openvpn_server(&self) {
        let starts = {
            let mut vpn = self.vpn();
            let vpn = vpn.as_mut().expect("an OpenVPN LAN");
            assert!(vpn.server.is_none(), "the server is running already");
            vpn.server_starts += 1;
            vpn.server_starts
        };
        let child = self.spawn_openvpn(&self.box_ns(), "server.conf", &format!("server-{starts}"));
        self.vpn().as_mut().unwrap().server = Some(child);
        let ok = wait_until(Duration::from_secs(10), || {
            self.check_openvpn_server();
            tap_has_addr(&self.box_ns(), "10.8.0.1/24")
        });
        assert!(
            ok,
            "the server's tap0 did not come up with 10.8.0.1 in 10 s"
        );
    }

    /// Panics if the server was started and has exited.
    fn check_openvpn_server(&self) {
        let mut vpn = self.vpn();
        if let Some(child) = vpn.as_mut().and_then(|v| v.server.as_mut()) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the openvpn server exited: {status}");
            }
        }
    }

    /// Stops the server with SIGTERM (it tells the clients to reconnect, then exits and
    /// closes tap0, which the kernel then deletes) and waits until tap0 is gone.
    pub fn stop_openvpn_server(&self) -> ExitStatus {
        let child = self.vpn().as_mut().and_then(|v| v.server.take());
        let mut child = child.expect("the server is not running");
        signal(&child, libc::SIGTERM);
        let status = wait_child(&mut child, Duration::from_secs(10))
            .expect("openvpn server still running 10 s after SIGTERM");
        let gone = wait_until(Duration::from_secs(5), || {
            !ns_exec(
                &self.box_ns(),
                &["ip", "link", "show", "dev", "tap0"],
                CMD_TIMEOUT,
            )
            .ok()
        });
        assert!(gone, "tap0 still exists after the server exited");
        status
    }

    /// How many times client `i` completed a connection ("Initialization Sequence
    /// Completed" in its log). Its tap0 outlives a reconnect (persist-tun) and keeps its
    /// address, so only the log tells a reconnect apart.
    pub fn openvpn_connections(&self, i: usize) -> usize {
        let log = self.dir.join(format!("openvpn-{}.log", self.host(i).name));
        fs::read_to_string(log)
            .unwrap_or_default()
            .matches("Initialization Sequence Completed")
            .count()
    }

    /// Waits until every client has completed `times` connections and its tap0 has the
    /// pushed address; then sets rp_filter 0 and the 224.0.0.0/4 route on tap0.
    pub fn wait_openvpn_clients(&self, times: usize, timeout: Duration) {
        let mut missing = Vec::new();
        let ok = wait_until(timeout, || {
            self.check_openvpn_server();
            missing = (1..=self.hosts.len())
                .filter(|&i| {
                    let c = self.host(i);
                    self.openvpn_connections(i) < times
                        || !tap_has_addr(&c.ns, &format!("{}/24", c.ip))
                })
                .map(|i| self.host(i).name.clone())
                .collect();
            missing.is_empty()
        });
        assert!(
            ok,
            "clients not connected ({times} times) after {timeout:?}: {missing:?}"
        );
        for c in &self.hosts {
            ns_sysctl(&c.ns, "net.ipv4.conf.tap0.rp_filter", "0");
            ns_run(
                &c.ns,
                &["ip", "route", "replace", "224.0.0.0/4", "dev", "tap0"],
            );
        }
    }

    /// host_agent.py on client `i`'s tap0, joined to `joins`.
    pub fn start_tap_agent(&self, i: usize, joins: &[&str]) -> Agent {
        self.start_agent_on(
            self.host(i).clone(),
            "tap0",
            joins,
            Duration::from_secs(300),
        )
    }
}

/// tap0 in `ns` exists, is up and has `cidr`.
fn tap_has_addr(ns: &str, cidr: &str) -> bool {
    let out = ns_exec(
        ns,
        &["ip", "-o", "-4", "addr", "show", "dev", "tap0", "up"],
        CMD_TIMEOUT,
    );
    out.ok() && out.stdout.split_whitespace().any(|w| w == cidr)
}
