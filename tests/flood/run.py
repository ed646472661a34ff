"""Hostile-client figures for a real `roomd serve` on loopback (bounded loops; it stops by itself).

Usage: python3 tests/flood/run.py ROOMD_BINARY [--quick]

Prints, for the README's operations section:
  - RSS before and after a wrong-token flood (and idle after it);
  - how long a new tenant's first request takes behind a flood of wrong tokens (400 connections);
  - metric series before and after many requests with made-up methods (must be unchanged);
  - the longest request while PostgreSQL is frozen (SIGSTOP) for a while (must be 503s).
Checks only what must hold (statuses, series unchanged); times and sizes are printed, not asserted.
"""
import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

QUICK = "--quick" in sys.argv
BINARY = sys.argv[1]
FLOOD_CONNECTIONS = 100 if QUICK else 400
WRONG_TOKENS = 300 if QUICK else 1000
MADE_UP_METHODS = 5_000 if QUICK else 100_000
STALL_SECONDS = 6 if QUICK else 30
checks = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    checks["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def basic(sid, token):
    return base64.b64encode(f"{sid}:{token}".encode()).decode()


async def request(port, head, timeout=60):
    """One request on a new connection; returns (status, body, seconds)."""
    started = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    writer.write(head.encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data.split(b"\r\n\r\n", 1)[-1], time.monotonic() - started


def get(path, auth=None, method="GET"):
    extra = f"Authorization: Basic {auth}\r\n" if auth else ""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"


async def flood(port, connections, total, stop=None):
    """`total` wrong-token requests over `connections` connections (random SIDs), or until `stop`."""
    sent = 0
    statuses = {}

    async def one_connection():
        nonlocal sent
        while sent < total and not (stop and stop.is_set()):
            sent += 1
            sid = "AC" + secrets.token_hex(16)
            try:
                status, _, _ = await request(port, get("/v1/Rooms", basic(sid, secrets.token_hex(16))))
            except (OSError, asyncio.TimeoutError):
                status = 0
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return statuses


async def series(port):
    _, body, _ = await request(port, get("/metrics"))
    return sum(1 for line in body.decode().splitlines() if line.startswith("roomd_http_requests_total{"))


async def main():
    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)
    port = free_port()
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    env = dict(os.environ, ROOMD_DATA_DIR=f"{work}/data", ROOMD_BIND=f"127.0.0.1:{port}",
               ROOMD_METRICS_BIND="main", ROOMD_BOOTSTRAP_ACCOUNT=f"{sid}:{token}", RUST_LOG="error")
    env.pop("DATABASE_URL", None)
    log = open(f"{work}/roomd.log", "w")
    server = subprocess.Popen([BINARY, "serve"], env=env, stderr=log)
    try:
        for _ in range(600):
            try:
                if (await request(port, get("/healthz"), 2))[0] == 200:
                    break
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
        me = basic(sid, token)
        status, _, _ = await request(port, get("/v1/Rooms", me))
        check("the bootstrap account is served", status == 200, status)

        # 1. Memory after a wrong-token flood.
        before = rss_mib(server.pid)
        statuses = await flood(port, 100, WRONG_TOKENS)
        after = rss_mib(server.pid)
        await asyncio.sleep(2)
        idle = rss_mib(server.pid)
        print(f"figure: RSS {before:.0f} MiB before, {after:.0f} MiB after {WRONG_TOKENS} wrong tokens at "
              f"100 connections, {idle:.0f} MiB idle after (statuses {statuses})")
        check("wrong tokens get 401 or 429, never another status",
              set(statuses) <= {401, 429}, statuses)

        # 2. A new tenant's first request behind a flood of wrong tokens, each for a SID of its own
        #    (loopback clients are throttled by SID only, so every flood request costs argon2).
        create = subprocess.run([BINARY, "accounts", "create", "--friendly-name", "new", "--format", "env"],
                                env=env, capture_output=True, text=True, check=True)
        new = dict(line.removeprefix("export ").split("=", 1) for line in create.stdout.splitlines())
        stop = asyncio.Event()
        task = asyncio.create_task(flood(port, FLOOD_CONNECTIONS, 10**9, stop))
        await asyncio.sleep(2)
        status, _, waited = await request(port, get("/v1/Rooms", basic(new["TWILIO_ACCOUNT_SID"], new["TWILIO_AUTH_TOKEN"])))
        stop.set()
        flood_statuses = await task
        print(f"figure: a new tenant's first request took {waited * 1000:.0f} ms behind a flood at "
              f"{FLOOD_CONNECTIONS} connections (status {status}; flood {flood_statuses})")
        check("the new tenant is answered 200 or a prompt 429", status in (200, 429), status)

        # 3. Metric series after made-up methods.
        await request(port, "WARMUP /v1/Rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first = await series(port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        batch = 500
        for start in range(0, MADE_UP_METHODS, batch):
            writer.write("".join(f"M{i} /v1/Rooms HTTP/1.1\r\nHost: x\r\n\r\n"
                                 for i in range(start, start + batch)).encode())
            await writer.drain()
            got = 0
            while got < batch:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                got += chunk.count(b"HTTP/1.1 405")
        writer.close()
        second = await series(port)
        print(f"figure: {first} request series before, {second} after {MADE_UP_METHODS} made-up methods")
        check("made-up methods add no series (but the scrape's own)", second <= first + 1, (first, second))

        # 4. The longest request while PostgreSQL is frozen.
        pid_file = f"{work}/data/pgdata/postmaster.pid"
        postmaster = int(open(pid_file).read().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        frozen = [postmaster] + [int(c) for c in children]
        for p in frozen:
            os.kill(p, signal.SIGSTOP)
        longest, stall_statuses = 0.0, {}
        try:
            deadline = time.monotonic() + STALL_SECONDS
            while time.monotonic() < deadline:
                results = await asyncio.gather(*(request(port, get(f"/v1/Rooms?PageSize={n}", me)) for n in range(1, 9)),
                                               return_exceptions=True)
                for r in results:
                    if isinstance(r, tuple):
                        stall_statuses[r[0]] = stall_statuses.get(r[0], 0) + 1
                        longest = max(longest, r[2])
                    else:
                        stall_statuses["error"] = stall_statuses.get("error", 0) + 1
        finally:
            for p in frozen:
                os.kill(p, signal.SIGCONT)
        print(f"figure: longest request during a {STALL_SECONDS} s database freeze: {longest:.2f} s "
              f"(statuses {stall_statuses})")
        check("requests during the freeze are answered (503 or served from what needs no database)",
              set(stall_statuses) <= {200, 503}, stall_statuses)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["rm", "-rf", work])
    print(f"flood: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


asyncio.run(main())
