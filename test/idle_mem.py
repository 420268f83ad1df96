#!/usr/bin/env python3
"""Resident memory per idle client of a raw len16 listener (BENCHMARKS.md).

Usage: python3 test/idle_mem.py PID HOST:PORT N

Opens N connections to HOST:PORT, reads one len16 frame on each (the
welcome, so the client's agent exists), waits until the VmRSS of process
PID settles (less than 200 KiB of change in a second, at most 20 s) and
prints KiB per connection. `node bench --idle` does the same for echo
listeners; this one serves listeners whose agents welcome and never echo
(the chat's).
"""
import socket
import struct
import sys
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")


def read_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise SystemExit("connection closed before its welcome")
        b += chunk
    return b


def main():
    pid, addr, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    host, port = addr.rsplit(":", 1)
    base = rss(pid)
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        (length,) = struct.unpack(">H", read_exact(s, 2))
        read_exact(s, length)
        socks.append(s)
    prev, now = 0, rss(pid)
    for _ in range(20):
        time.sleep(1)  # a measurement, not a test: wait for RSS to settle
        now = rss(pid)
        if abs(now - prev) < 200:
            break
        prev = now
    print(f"base {base} KiB, {n} idle: {now} KiB, {(now - base) / n:.2f} KiB/conn")


if __name__ == "__main__":
    main()
