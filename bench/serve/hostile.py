#!/usr/bin/env python3
"""Hostile clients against a running `apxserve serve` on loopback, and what they do to it.

    python3 bench/serve/hostile.py --port P --mode slowloris --clients 64 --seconds 30
    python3 bench/serve/hostile.py --port P --mode idle --clients 2000 --seconds 30

slowloris: each client sends a request header one byte every 3 s and reconnects when cut off.
idle:      each client connects and sends nothing (reconnects when closed).
Meanwhile a probe opens a fresh connection every 100 ms for GET /healthz, and another sends
one prediction every 200 ms (body: --body, default a flight-late request). Prints the
probes' latency percentiles, failures, and the predictions answered.
"""
import argparse
import json
import resource
import socket
import statistics
import threading
import time

DEFAULT_BODY = json.dumps({"dep_time": "2001-06-12 17:30", "origin": "ORD", "dest": "LAX", "distance": 1744})


def exchange(port, data, timeout=5.0):
    """Sends `data` on a fresh connection, reads until close; returns (status, seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else -1
    return status, time.monotonic() - start


def hostile_client(port, mode, stop, counters):
    header = b"POST /v1/pipelines/x/predict HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4000
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            counters["connect_failures"] += 1
            time.sleep(0.5)
            continue
        counters["connections"] += 1
        try:
            i = 0
            while not stop.is_set():
                if mode == "slowloris":
                    s.send(header[i % len(header):i % len(header) + 1])
                    i += 1
                    stop.wait(3.0)
                else:
                    s.settimeout(1.0)
                    try:
                        if s.recv(1) == b"":
                            break  # closed by the server (idle timeout)
                    except socket.timeout:
                        pass
        except OSError:
            pass
        finally:
            s.close()


def percentile(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["slowloris", "idle"], required=True)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--pipeline", default="flight-late")
    ap.add_argument("--body", default=DEFAULT_BODY)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets

    stop = threading.Event()
    counters = {"connections": 0, "connect_failures": 0}
    threads = [threading.Thread(target=hostile_client, args=(args.port, args.mode, stop, counters), daemon=True)
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # let them connect

    probe_ms, probe_failures = [], 0
    predictions = {"ok": 0, "other": 0, "failed": 0}
    body = args.body.encode()
    predict = (f"POST /v1/pipelines/{args.pipeline}/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    def predictor():
        while not stop.is_set():
            try:
                status, _ = exchange(args.port, predict)
                predictions["ok" if status == 200 else "other"] += 1
            except OSError:
                predictions["failed"] += 1
            stop.wait(0.2)

    pt = threading.Thread(target=predictor, daemon=True)
    pt.start()
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        try:
            status, secs = exchange(args.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if status == 200:
                probe_ms.append(secs * 1000)
            else:
                probe_failures += 1
        except OSError:
            probe_failures += 1
        time.sleep(0.1)
    stop.set()
    pt.join(timeout=6)
    print(json.dumps({
        "mode": args.mode, "clients": args.clients, "seconds": args.seconds,
        "hostile_connections": counters["connections"], "hostile_connect_failures": counters["connect_failures"],
        "probes": len(probe_ms) + probe_failures, "probe_failures": probe_failures,
        "healthz_p50_ms": round(percentile(probe_ms, 50), 2), "healthz_p99_ms": round(percentile(probe_ms, 99), 2),
        "healthz_max_ms": round(max(probe_ms), 2) if probe_ms else None,
        "healthz_mean_ms": round(statistics.mean(probe_ms), 2) if probe_ms else None,
        "predictions": predictions,
    }))


if __name__ == "__main__":
    main()
