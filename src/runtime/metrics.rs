//! The metrics endpoint (`--metrics-listen ADDR:PORT`): `GET /metrics` answered with the
//! OpenMetrics text of a status snapshot (`crate::openmetrics::render`), built from the same
//! in-process snapshot as the control socket's, outside the daemon's lock.
//!
//! A minimal HTTP/1.1 responder on std's `TcpListener`, not a server crate: it answers one
//! fixed resource, reads nothing but a request head, and closes every connection
//! (`Connection: close`), so keep-alive, chunking, bodies and TLS (the parts a crate would
//! bring, with its dependencies) are not needed. What it must do is survive clients that
//! are slow, malformed or many:
//!
//! - the accept thread (`metrics`) hands a connection to one of [`WORKERS`] threads
//!   (`metrics-N`) through a queue of [`QUEUE`]; when all are busy it answers 503 at once,
//!   without reading, and closes;
//! - a request head larger than [`MAX_HEAD`] is answered 431; one not complete within
//!   [`HEAD_DEADLINE`] of the accept is answered 408 (a byte a second does not extend it);
//! - every read and write waits at most [`IO_TIMEOUT`], and the whole exchange, answer
//!   included, ends by [`REQUEST_DEADLINE`];
//! - 404 for another path, 405 for another method, 400 for a head that is no HTTP/1.x.
//!
//! None of this touches the packet threads or the control socket: a worker takes the
//! daemon's lock only inside the snapshot function, as the control socket does.

use super::stats::{inc, Counters};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Threads answering requests.
pub const WORKERS: usize = 2;
/// Accepted connections waiting for a worker; beyond, 503.
pub const QUEUE: usize = 2;
/// Most bytes of a request head (request line and header fields).
pub const MAX_HEAD: usize = 8 * 1024;
/// From the accept to the end of the request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(3);
/// From the accept to the last byte of the answer.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Most a single read or write waits.
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// After the answer, what the client still sends is read and dropped (so that closing does
/// not reset the connection before it has read the answer): at most this much, this long.
const DRAIN_BYTES: usize = 2 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Bind the endpoint; the error names the address and the option.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let l = TcpListener::bind(addr)
        .map_err(|e| format!("--metrics-listen {addr}: cannot listen there: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    Ok(l)
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The metrics (`GET /metrics`); `head_only` for `HEAD`.
    Metrics { head_only: bool },
    /// An error status: 400, 404, 405, 408, 431, 503, 505.
    Error(u16),
}

/// The end of the request head in `buf` (just past its empty line), if it is there.
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// The answer to the request whose first bytes are `buf`; None while its head is incomplete
/// and still within [`MAX_HEAD`]. Pure.
pub fn answer(buf: &[u8]) -> Option<Answer> {
    match head_end(buf) {
        Some(end) if end <= MAX_HEAD => Some(route(&buf[..end])),
        Some(_) => Some(Answer::Error(431)),
        None if buf.len() >= MAX_HEAD => Some(Answer::Error(431)),
        None => None,
    }
}

/// A complete request head's answer.
fn route(head: &[u8]) -> Answer {
    let Ok(text) = std::str::from_utf8(head) else {
        return Answer::Error(400);
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Answer::Error(400);
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !token(method) || !target.starts_with('/') {
        return Answer::Error(400);
    }
    match version.strip_prefix("HTTP/") {
        Some("1.0" | "1.1") => {}
        Some(v) if v.len() == 3 && v.as_bytes()[1] == b'.' => return Answer::Error(505),
        _ => return Answer::Error(400),
    }
    // Header fields: `name: value`, nothing else (the empty lines end the head).
    for l in lines.filter(|l| !l.is_empty()) {
        match l.split_once(':') {
            Some((name, _)) if token(name) => {}
            _ => return Answer::Error(400),
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return Answer::Error(404);
    }
    match method {
        "GET" => Answer::Metrics { head_only: false },
        "HEAD" => Answer::Metrics { head_only: true },
        _ => Answer::Error(405),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// The bytes of a response: status line, headers, and the body unless `head_only`.
pub fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut extra = String::new();
    match status {
        405 => extra.push_str("Allow: GET, HEAD\r\n"),
        503 => extra.push_str("Retry-After: 1\r\n"),
        _ => {}
    }
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{extra}Connection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// An error response with a one-line plain text body.
fn error_response(status: u16) -> Vec<u8> {
    let body = format!("{status} {}\n", reason(status));
    response(status, "text/plain; charset=utf-8", body.as_bytes(), false)
}

/// Serve until `stop`: `render` builds the metrics text (it takes the snapshot). Counts
/// `metrics_scrapes` (answered with the metrics) and `metrics_rejected` (any error answer).
pub fn serve(
    listener: TcpListener,
    stop: &AtomicBool,
    counters: &Counters,
    render: impl Fn() -> String + Sync,
) {
    let (tx, rx) = crossbeam_channel::bounded::<(TcpStream, Instant)>(QUEUE);
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let (rx, render) = (rx.clone(), &render);
            let started = std::thread::Builder::new()
                .name(format!("metrics-{w}"))
                .spawn_scoped(scope, move || {
                    for (stream, accepted) in rx {
                        handle(stream, accepted, counters, render);
                    }
                });
            if let Err(e) = started {
                log::error!("metrics: cannot start worker thread {w}: {e}");
            }
        }
        drop(rx);
        let mut last_warn: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, peer)) => {
                    let now = Instant::now();
                    if let Err(crossbeam_channel::TrySendError::Full((s, _))) =
                        tx.try_send((stream, now))
                    {
                        log::debug!("metrics: {peer}: busy, answered 503");
                        inc(&counters.metrics_rejected);
                        busy(s);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = super::sys::wait_readable(&listener, super::shared::TICK);
                }
                Err(e) => {
                    // EMFILE and the like: say so now and then, and do not spin.
                    let now = Instant::now();
                    if last_warn.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                        log::warn!("metrics: accept failed: {e}");
                        last_warn = Some(now);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        drop(tx);
    });
}

/// All workers are busy: 503 without reading the request, never blocking the accept loop.
fn busy(s: TcpStream) {
    let _ = s.set_nonblocking(true);
    let _ = (&s).write(&error_response(503));
    let _ = s.shutdown(Shutdown::Write);
}

/// One connection, from its accept: read the head, answer, close.
fn handle(
    mut s: TcpStream,
    accepted: Instant,
    counters: &Counters,
    render: &(impl Fn() -> String + ?Sized),
) {
    let peer = s
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    if s.set_nonblocking(false).is_err() {
        return;
    }
    let _ = s.set_nodelay(true);
    let head_by = accepted + HEAD_DEADLINE;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let ans = loop {
        if let Some(a) = answer(&buf) {
            break a;
        }
        let left = head_by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Answer::Error(408);
        }
        let _ = s.set_read_timeout(Some(left.min(IO_TIMEOUT)));
        // Never more than the limit (plus the end of a head) in the buffer.
        let room = (MAX_HEAD + 4 - buf.len()).clamp(1, chunk.len());
        match s.read(&mut chunk[..room]) {
            Ok(0) => {
                log::debug!("metrics: {peer}: closed before a complete request");
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                log::debug!("metrics: {peer}: {e}");
                return;
            }
        }
    };
    let bytes = match ans {
        Answer::Metrics { head_only } => {
            inc(&counters.metrics_scrapes);
            let body = render();
            response(
                200,
                crate::openmetrics::CONTENT_TYPE,
                body.as_bytes(),
                head_only,
            )
        }
        Answer::Error(status) => {
            log::debug!("metrics: {peer}: answered {status}");
            inc(&counters.metrics_rejected);
            error_response(status)
        }
    };
    let by = accepted + REQUEST_DEADLINE;
    if let Err(e) = write_by(&mut s, &bytes, by) {
        log::debug!("metrics: {peer}: answer not delivered: {e}");
        return;
    }
    let _ = s.shutdown(Shutdown::Write);
    drain(&mut s, by.min(Instant::now() + DRAIN_TIME));
}

/// Write all of `bytes` by `deadline`, each write waiting at most [`IO_TIMEOUT`].
fn write_by(s: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request deadline"));
        }
        s.set_write_timeout(Some(left.min(IO_TIMEOUT)))?;
        match s.write(&bytes[..bytes.len().min(64 << 10)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read and drop what the client still sends, until it closes, [`DRAIN_BYTES`] or
/// `deadline`.
fn drain(s: &mut TcpStream, deadline: Instant) {
    let mut chunk = [0u8; 16 << 10];
    let mut total = 0;
    while total < DRAIN_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn routes_get_and_head_of_metrics_and_refuses_the_rest() {
        let a = |s: &str| answer(s.as_bytes());
        let ok = Some(Answer::Metrics { head_only: false });
        assert_eq!(a("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), ok);
        assert_eq!(a("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), ok);
        assert_eq!(a("GET /metrics HTTP/1.1\n\n"), ok, "bare LF");
        assert_eq!(
            a("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Some(Answer::Metrics { head_only: true })
        );
        assert_eq!(
            a("POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Answer::Error(405))
        );
        assert_eq!(a("GET / HTTP/1.1\r\n\r\n"), Some(Answer::Error(404)));
        assert_eq!(
            a("GET /metricsx HTTP/1.1\r\n\r\n"),
            Some(Answer::Error(404))
        );
        assert_eq!(a("GET /metrics HTTP/2.0\r\n\r\n"), Some(Answer::Error(505)));
        for bad in [
            "GET /metrics\r\n\r\n",
            "GET  /metrics HTTP/1.1\r\n\r\n",
            "GET metrics HTTP/1.1\r\n\r\n",
            "G(T /metrics HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
            "GET /metrics SPDY\r\n\r\n",
            "\r\n\r\n",
        ] {
            assert_eq!(a(bad), Some(Answer::Error(400)), "{bad:?}");
        }
        assert_eq!(
            answer(b"GET /metr\xff HTTP/1.1\r\n\r\n"),
            Some(Answer::Error(400))
        );
    }

    #[test]
    fn an_incomplete_head_waits_and_a_large_one_is_431() {
        assert_eq!(answer(b""), None);
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        let long = vec![b'a'; MAX_HEAD - 1];
        assert_eq!(answer(&long), None);
        let long = vec![b'a'; MAX_HEAD];
        assert_eq!(answer(&long), Some(Answer::Error(431)));
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'x');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(answer(&big), Some(Answer::Error(431)));
        // Just within the limit.
        let mut fits = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        fits.resize(MAX_HEAD - 4, b'x');
        fits.extend_from_slice(b"\r\n\r\n");
        assert_eq!(answer(&fits), Some(Answer::Metrics { head_only: false }));
    }

    #[test]
    fn responses_close_and_say_their_length_and_type() {
        let r = String::from_utf8(response(
            200,
            crate::openmetrics::CONTENT_TYPE,
            b"x\n",
            false,
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains(
                "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
            ),
            "{r}"
        );
        assert!(r.contains("\r\nContent-Length: 2\r\n") && r.contains("\r\nConnection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nx\n"), "{r}");
        let r = String::from_utf8(response(200, "t", b"x\n", true)).unwrap();
        assert!(
            r.ends_with(
                "Content-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
            ),
            "{r}"
        );
        let r = String::from_utf8(error_response(405)).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
                && r.contains("Allow: GET, HEAD\r\n"),
            "{r}"
        );
        let r = String::from_utf8(error_response(503)).unwrap();
        assert!(
            r.contains("Retry-After: 1\r\n") && r.ends_with("503 Service Unavailable\n"),
            "{r}"
        );
    }

    /// The server on a loopback port, with a render that counts its calls.
    fn server() -> (
        SocketAddr,
        Arc<AtomicBool>,
        Arc<Counters>,
        std::thread::JoinHandle<()>,
    ) {
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (s, c) = (stop.clone(), counters.clone());
        let t = std::thread::spawn(move || serve(l, &s, &c, || "# EOF\n".to_string()));
        (addr, stop, counters, t)
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(request).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_metrics_and_errors_over_tcp_and_counts_them() {
        let (addr, stop, counters, t) = server();
        let r = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n# EOF\n"),
            "{r}"
        );
        let r = exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        // A head over the limit, sent whole: 431, and the answer arrives (no reset).
        let mut big = b"GET /".to_vec();
        big.resize(64 << 10, b'a');
        let r = exchange(addr, &big);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        assert_eq!(counters.metrics_scrapes.load(Ordering::Relaxed), 1);
        assert_eq!(counters.metrics_rejected.load(Ordering::Relaxed), 2);
        // A client that connects and says nothing gets 408 after HEAD_DEADLINE, while
        // another is answered at once.
        let mut idle = TcpStream::connect(addr).unwrap();
        let t0 = Instant::now();
        let r = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        idle.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut out = String::new();
        let _ = idle.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
        let waited = t0.elapsed();
        assert!(
            waited >= HEAD_DEADLINE - Duration::from_millis(200)
                && waited < HEAD_DEADLINE + Duration::from_secs(2),
            "{waited:?}"
        );
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }

    #[test]
    fn when_every_worker_is_busy_more_clients_get_503_at_once() {
        let (addr, stop, counters, t) = server();
        // Silent clients occupy the workers and the queue (one at a time, so that each
        // worker has taken its own before the next comes).
        let hogs: Vec<_> = (0..WORKERS + QUEUE)
            .map(|_| {
                let c = TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                c
            })
            .collect();
        let t0 = Instant::now();
        let r = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert!(counters.metrics_rejected.load(Ordering::Relaxed) >= 1);
        drop(hogs);
        // Once they are gone, scrapes are answered again.
        assert!(eventually(|| exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\n\r\n"
        )
        .starts_with("HTTP/1.1 200 ")));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }

    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    #[test]
    fn every_daemon_counter_is_a_family_of_its_own_with_its_doc_as_help() {
        let snap = crate::status::Snapshot {
            counters: Counters::default().snapshot(),
            ..Default::default()
        };
        let t = crate::openmetrics::render(&snap, 10, Counters::docs());
        for (name, doc) in Counters::docs() {
            let help = crate::openmetrics::escape(&super::super::stats::doc_text(doc));
            assert!(
                t.contains(&format!(
                    "# TYPE snoopcast_{name} counter\n# HELP snoopcast_{name} {help}\nsnoopcast_{name}_total 0\n"
                )),
                "{name} (a name taken by another family?):\n{t}"
            );
        }
    }

    /// Every string under an "expr" key of the dashboard.
    fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_grafana_dashboard_queries_only_metrics_that_exist() {
        use crate::status::{GroupStatus, GroupTraffic, InterfaceStatus, MemberStatus, Snapshot};
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../../examples/grafana/snoopcast.json"))
                .expect("the dashboard is JSON");
        let mut all = Vec::new();
        exprs(&dash, &mut all);
        assert!(all.len() >= 10, "{all:?}");
        // A snapshot with every kind of series: a member, a group with traffic, an
        // interface, every counter.
        let snap = Snapshot {
            groups: vec![GroupStatus {
                group: "239.1.1.1".into(),
                members: vec![MemberStatus {
                    interface: "dn0".into(),
                    ..Default::default()
                }],
                upstream: GroupTraffic {
                    last_packet_ms_ago: Some(1),
                    ..Default::default()
                },
                ..Default::default()
            }],
            interfaces: vec![InterfaceStatus {
                name: "dn0".into(),
                querier: "querier".into(),
                mld_querier: "querier".into(),
                ..Default::default()
            }],
            counters: Counters::default().snapshot(),
            ..Default::default()
        };
        let text = crate::openmetrics::render(&snap, 10, Counters::docs());
        let served: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let mut names = 0;
        for e in &all {
            let mut rest = e.as_str();
            while let Some(i) = rest.find("snoopcast_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                // A label name (`snoopcast_querier_role="querier"`) is not a metric.
                if !tail[end..].starts_with('=') {
                    assert!(
                        served.contains(name),
                        "the dashboard queries {name}, which is not served ({e})"
                    );
                    names += 1;
                }
                rest = &tail[end..];
            }
        }
        assert!(names >= 15, "{names}");
    }

    #[test]
    fn a_bind_error_names_the_address() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let e = bind(addr).unwrap_err();
        assert!(
            e.starts_with(&format!("--metrics-listen {addr}: cannot listen there: ")),
            "{e}"
        );
    }
}
