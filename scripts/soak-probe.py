#!/usr/bin/env python3
"""The well-behaved client of `make soak`: what the attackers cost everyone else.

Over the proxy's RESP port, two connections of their own, one request in flight on each:
  miss: `GET probe:<pid>:<n>`, a key never asked before and absent from Redis, so every
        request is a cache miss that the proxy fetches from Redis;
  fwd:  `HGET <hash> <field>`, a command the proxy forwards over its forwarding lane.
Each sends RATE requests a second (paced against the start, not after each answer, so a
slow answer shows as latency, not as fewer samples) until SECONDS have passed, and every
WINDOW seconds one line goes to stdout and is flushed:

  second  miss_n  miss_p50_ms  miss_p99_ms  miss_max_ms  fwd_n  fwd_p50_ms  fwd_p99_ms  fwd_max_ms  errors

`errors`: error replies (`-ERR ...`), timeouts (TIMEOUT s, counted at that latency) and
reconnects, both kinds together. Python 3 standard library only.

Usage: scripts/soak-probe.py PORT SECONDS [--window 10] [--rate 50] [--timeout 5]
       [--hash hash:probe] [--field f]
"""

import argparse
import math
import os
import socket
import threading
import time


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Connection:
    """One RESP connection reading single-line and bulk replies (all GET and HGET answer)."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def ask(self, request):
        """Sends one request; True for a value or nil, False for an error reply."""
        self.sock.sendall(request)
        line = self._line()
        if line.startswith(b"$"):
            n = int(line[1:])
            if n >= 0:
                self._exact(n + 2)
            return True
        return not line.startswith(b"-")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Series:
    """Latencies of one kind, taken and reset per window under a lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples = []
        self.errors = 0

    def add(self, ms, ok):
        with self.lock:
            self.samples.append(ms)
            if not ok:
                self.errors += 1

    def take(self):
        with self.lock:
            samples, errors = sorted(self.samples), self.errors
            self.samples, self.errors = [], 0
        return samples, errors


def percentile(sorted_samples, p):
    if not sorted_samples:
        return float("nan")
    # nearest rank: the smallest sample with at least p% of the samples at or below it
    rank = math.ceil(p / 100 * len(sorted_samples))
    return sorted_samples[min(len(sorted_samples), max(rank, 1)) - 1]


def run_kind(port, series, make_request, rate, deadline, timeout):
    conn = None
    start = time.monotonic()
    i = 0
    while True:
        due = start + i / rate
        now = time.monotonic()
        if due >= deadline:
            break
        if due > now:
            time.sleep(due - now)
        i += 1
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = Connection(port, timeout)
            ok = conn.ask(make_request(i))
        except (OSError, ValueError, ConnectionError):
            ok = False
            if conn is not None:
                conn.close()
            conn = None
        series.add((time.monotonic() - t0) * 1000, ok)
    if conn is not None:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--rate", type=float, default=50, help="requests per second of each kind")
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--hash", default="hash:probe")
    ap.add_argument("--field", default="f")
    a = ap.parse_args()
    prefix = f"probe:{os.getpid()}:{int(time.time())}:"
    start = time.monotonic()
    deadline = start + a.seconds
    miss, fwd = Series(), Series()
    threads = [
        threading.Thread(target=run_kind, daemon=True,
                         args=(a.port, miss, lambda i: command("GET", f"{prefix}{i}"), a.rate, deadline, a.timeout)),
        threading.Thread(target=run_kind, daemon=True,
                         args=(a.port, fwd, lambda i: command("HGET", a.hash, a.field), a.rate, deadline, a.timeout)),
    ]
    for t in threads:
        t.start()
    w = 1
    while True:
        end = start + w * a.window
        if end > deadline + a.window / 2:
            break
        time.sleep(max(0.0, end - time.monotonic()))
        ms, me = miss.take()
        fs, fe = fwd.take()
        print(f"{w * a.window:g} {len(ms)} {percentile(ms, 50):.2f} {percentile(ms, 99):.2f} "
              f"{(ms[-1] if ms else float('nan')):.2f} {len(fs)} {percentile(fs, 50):.2f} "
              f"{percentile(fs, 99):.2f} {(fs[-1] if fs else float('nan')):.2f} {me + fe}", flush=True)
        w += 1
    for t in threads:
        t.join(timeout=a.timeout + 1)


if __name__ == "__main__":
    main()
