#!/usr/bin/python3
"""Clients of snoopcast's --metrics-listen endpoint, for tests/e2e_metrics.rs.

    metrics_client.py parse < TEXT            OpenMetrics text -> JSON, with prometheus_client
    metrics_client.py get HOST PORT [PATH]    one GET: {"status", "headers", "body", "elapsed"}
    metrics_client.py slowloris HOST PORT S   a request head a byte a second, for S seconds
                                              at most: {"sent", "answer", "elapsed"}
    metrics_client.py bigline HOST PORT       a 1 MiB request line: {"answer", "error"}
    metrics_client.py flood HOST PORT N       N connections at once, then a GET on each:
                                              {"codes": {status or "reset"/"closed": n}}

`parse` uses Debian's python3-prometheus-client (the parser Prometheus' Python client
ships): it raises on anything that is not valid OpenMetrics, which makes this exit 1.
Everything prints one JSON line on stdout.
"""

import json
import select
import socket
import sys
import threading
import time


def parse():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    text = sys.stdin.read()
    out = {}
    for f in text_string_to_metric_families(text):
        out[f.name] = {
            "type": f.type,
            "unit": f.unit,
            "help": f.documentation,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
    print(json.dumps(out))


def read_answer(s, timeout):
    """Everything the server sends until it closes (or timeout): the raw bytes."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def first_line(data):
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def get(host, port, path="/metrics"):
    t0 = time.monotonic()
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = read_answer(s, 5)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/") else 0
    print(json.dumps({"status": status, "headers": headers, "body": body.decode("utf-8"),
                      "elapsed": time.monotonic() - t0}))


def slowloris(host, port, seconds):
    t0 = time.monotonic()
    s = socket.create_connection((host, int(port)), timeout=5)
    head = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100
    sent = 0
    answer = b""
    for b in head:
        if time.monotonic() - t0 > float(seconds):
            break
        try:
            s.sendall(bytes([b]))
            sent += 1
        except OSError:
            break
        r, _, _ = select.select([s], [], [], 1.0)
        if r:
            answer = read_answer(s, 2)
            break
    print(json.dumps({"sent": sent, "answer": first_line(answer),
                      "elapsed": time.monotonic() - t0}))


def bigline(host, port):
    s = socket.create_connection((host, int(port)), timeout=5)
    line = b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n\r\n"
    err = []

    def send():
        try:
            s.sendall(line)
        except OSError as e:
            err.append(str(e))

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        answer = read_answer(s, 5)
    except OSError as e:
        answer = b""
        err.append(str(e))
    t.join(5)
    print(json.dumps({"answer": first_line(answer), "error": "; ".join(err)}))


def flood(host, port, n):
    socks = []
    codes = {}
    for _ in range(int(n)):
        try:
            socks.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError as e:
            codes["connect: " + str(e)] = codes.get("connect: " + str(e), 0) + 1
    for s in socks:
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        except OSError:
            pass
    for s in socks:
        try:
            data = read_answer(s, 10)
            key = first_line(data).split(" ")[1] if data else "closed"
        except OSError:
            key = "reset"
        codes[key] = codes.get(key, 0) + 1
        s.close()
    print(json.dumps({"codes": codes}))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"parse": parse, "get": get, "slowloris": slowloris, "bigline": bigline,
     "flood": flood}[cmd](*args)


if __name__ == "__main__":
    main()
