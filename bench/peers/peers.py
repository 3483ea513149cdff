#!/usr/bin/env python3
"""Python peer clients for the e2b-blocking side-by-side benchmark.

    python peers.py <peer> <measurement> --url http://127.0.0.1:PORT --token TOKEN
                    --kernel KERNEL_ID [--connection-file PATH] [--iterations N]
                    [--warmup N] [--mb N] [--timeout S]

peer:        zmq | websocket-client | e2b-ws
measurement: roundtrip | stream | reconnect

Prints exactly one JSON object on stdout (everything else goes to stderr).
Exit 0 on success or "unsupported", 1 on error (the JSON then has an "error" key),
2 on bad usage (argparse).  See README.md in this folder for the schema.
"""

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
import uuid
from datetime import datetime, timezone

SCHEMA_VERSION = 1
PEERS = ("zmq", "websocket-client", "e2b-ws")
MEASUREMENTS = ("roundtrip", "stream", "reconnect", "create", "concurrent")
# measurement -> (iterations, warmup) when not given on the command line
DEFAULTS = {"roundtrip": (200, 20), "stream": (3, 1), "reconnect": (50, 5), "create": (5, 1),
            "concurrent": (0, 0)}
CHUNK = 65536  # bytes per write in the stream cell ('x' * 65535 + '\n')

# The JSON goes to the real stdout; anything a library prints goes to stderr.
_REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr


class PeerError(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def now():
    return time.perf_counter()


def ms(seconds):
    return round(seconds * 1000.0, 4)


def proc_status(key):
    """A /proc/self/status field as an int (VmRSS/VmHWM in KiB, Threads), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def task_cpu_ns(pid):
    """CPU time (ns) of every thread of `pid` so far, from /proc/PID/task/*/schedstat."""
    if not pid:
        return None
    try:
        total = 0
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        return total
    except OSError:
        return None


def kernel_pid(kernel_id):
    """The pid whose command line names kernel-<id>.json, or None."""
    needle = f"kernel-{kernel_id}.json".encode()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if needle in f.read():
                        return int(d)
            except OSError:
                pass
    return None


def ssl_context():
    """For https:// and wss:// URLs: the certificate in $E2B_BENCH_CAFILE (a self-signed server
    certificate, which Python's ssl takes as its own trust anchor), else the system's roots."""
    import ssl

    return ssl.create_default_context(cafile=os.environ.get("E2B_BENCH_CAFILE") or None)


def rest(args, method, path, body=None):
    """One Jupyter REST call with the token header; returns the decoded JSON (or None)."""
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method,
                                 headers={"Authorization": f"token {args.token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=args.timeout, context=ssl_context()) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def maxrss_kib():
    # This process's own peak (KiB). Not ru_maxrss: Linux carries a process's ru_maxrss over
    # exec from the process it was forked from, so every peer reported the bench's own peak
    # (129 MiB, growth 0) once the bench had grown that big. VmHWM belongs to the new image.
    hwm = proc_status("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def pct(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


def summary(samples, prefix=""):
    s = sorted(samples)
    if not s:
        return {}
    return {
        prefix + "p50_ms": pct(s, 50),
        prefix + "p90_ms": pct(s, 90),
        prefix + "p99_ms": pct(s, 99),
        prefix + "min_ms": s[0],
        prefix + "max_ms": s[-1],
        prefix + "mean_ms": round(sum(s) / len(s), 4),
    }


def stream_code(mib):
    n = int(mib) * (1024 * 1024 // CHUNK)
    return (
        "import sys\n"
        "chunk = 'x' * 65535 + '\\n'\n"
        f"for _ in range({n}):\n"
        "    sys.stdout.write(chunk)\n"
        "    sys.stdout.flush()\n"
    )


def ws_base(url):
    url = url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://"):]
    if url.startswith("http://"):
        return "ws://" + url[len("http://"):]
    return url


def versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("jupyter_client", "pyzmq", "websocket-client", "websockets", "e2b",
                "e2b-code-interpreter"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def emit(obj, code=0):
    _REAL_STDOUT.write(json.dumps(obj) + "\n")
    _REAL_STDOUT.flush()
    # os._exit: do not wait for the e2b client's daemon threads / pyzmq teardown.
    os._exit(code)


def new_execute_msg(session, code, store_history=False):
    msg_id = uuid.uuid4().hex
    msg = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "bench",
            "session": session,
            "date": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
    }
    return msg_id, json.dumps(msg)


class Tally:
    """Per-execution counters for stdout stream traffic."""

    def __init__(self):
        self.bytes = 0
        self.messages = 0

    def add(self, text):
        self.bytes += len(text.encode("utf-8"))
        self.messages += 1


# --------------------------------------------------------------------------- zmq peer


class ZmqPeer:
    """jupyter_client.BlockingKernelClient straight to the kernel's ZMQ sockets."""

    name = "zmq"
    completion = "execute_reply+idle"

    def __init__(self, args):
        path = args.connection_file
        if not path:
            rt = os.environ.get("JUPYTER_RUNTIME_DIR")
            if rt:
                path = os.path.join(rt, f"kernel-{args.kernel}.json")
        if not path or not os.path.exists(path):
            raise PeerError(
                f"connection file not found ({path!r}); pass --connection-file "
                "or set JUPYTER_RUNTIME_DIR"
            )
        from jupyter_client import BlockingKernelClient

        self.timeout = args.timeout
        self.kc = BlockingKernelClient()
        self.kc.load_connection_file(path)
        self.kc.start_channels()
        # On a loaded machine a starting kernel can miss a 1 s heartbeat, which
        # wait_for_ready reports as "Kernel died"; ask again until the deadline.
        deadline = now() + args.timeout
        while True:
            try:
                self.kc.wait_for_ready(timeout=max(1.0, deadline - now()))
                break
            except RuntimeError:
                if now() >= deadline:
                    raise
                time.sleep(0.2)

    def execute(self, code, tally=None):
        msg_id = self.kc.execute(code, store_history=False)
        deadline = now() + self.timeout
        idle = reply = False
        # IOPub first (so the PUB/SUB queue is drained while the cell runs), then shell.
        while not idle:
            msg = self.kc.get_iopub_msg(timeout=max(0.001, deadline - now()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            t = msg["msg_type"]
            c = msg["content"]
            if t == "stream" and tally is not None and c.get("name") == "stdout":
                tally.add(c["text"])
            elif t == "status":
                if c["execution_state"] == "idle":
                    idle = True
                elif c["execution_state"] in ("dead", "restarting"):
                    raise PeerError(f"kernel {c['execution_state']}")
        while not reply:
            msg = self.kc.get_shell_msg(timeout=max(0.001, deadline - now()))
            if (msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "execute_reply"):
                reply = True

    def reconnect(self):
        raise NotImplementedError

    def close(self):
        try:
            self.kc.stop_channels()
        except Exception:
            pass


# --------------------------------------------------------------------------- websocket-client peer


class WebsocketClientPeer:
    """Plain websocket-client, legacy JSON framing, token header, no TCP_QUICKACK."""

    name = "websocket-client"
    completion = "execute_reply+idle"

    def __init__(self, args):
        import websocket

        self.websocket = websocket
        self.timeout = args.timeout
        self.session = uuid.uuid4().hex
        self.url = (f"{ws_base(args.url)}/api/kernels/{args.kernel}/channels"
                    f"?session_id={self.session}")
        self.header = [f"Authorization: token {args.token}"]
        # Stock websocket-client validates UTF-8 of every text frame in pure Python
        # (~1.5 us/byte) unless wsaccel is installed; --skip-utf8-validation turns it off.
        self.skip_utf8 = args.skip_utf8_validation
        self.variant = {"skip_utf8_validation": self.skip_utf8, "tcp_quickack": False}
        self.ws = None
        self.connect()

    def connect(self):
        self.ws = self.websocket.create_connection(
            self.url, header=self.header, timeout=self.timeout,
            skip_utf8_validation=self.skip_utf8,
            sslopt={"context": ssl_context()} if self.url.startswith("wss://") else {})

    def execute(self, code, tally=None):
        msg_id, frame = new_execute_msg(self.session, code)
        self.ws.send(frame)
        idle = reply = False
        while not (idle and reply):
            data = self.ws.recv()
            if not isinstance(data, str):
                if data == b"" or data is None:
                    raise PeerError("websocket closed")
                continue  # binary-buffer message; not ours
            msg = json.loads(data)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t = msg["msg_type"]
            c = msg["content"]
            if t == "stream" and tally is not None and c.get("name") == "stdout":
                tally.add(c["text"])
            elif t == "execute_reply":
                reply = True
            elif t == "status":
                if c["execution_state"] == "idle":
                    idle = True
                elif c["execution_state"] in ("dead", "restarting"):
                    raise PeerError(f"kernel {c['execution_state']}")

    def reconnect(self):
        """Close, reconnect with the same session_id; returns (close_s, handshake_s)."""
        t0 = now()
        self.ws.close()
        t1 = now()
        self.connect()
        t2 = now()
        return t1 - t0, t2 - t1

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


# --------------------------------------------------------------------------- e2b peer


class E2bWsPeer:
    """e2b_code_interpreter 0.0.10 messaging.JupyterKernelWebSocket (the WS-era client).

    URL as E2B builds it (no session_id query), plus ?token= for the local server.
    send_execution_message(code, on_stdout=...) -> msg_id (str);
    get_result(msg_id, timeout) -> Execution, resolved on iopub idle after
    execute_input (E2B does not wait for execute_reply).
    """

    name = "e2b-ws"
    completion = "idle-after-execute_input (E2B semantics; execute_reply not awaited)"

    def __init__(self, args):
        from e2b_code_interpreter.messaging import JupyterKernelWebSocket

        self.cls = JupyterKernelWebSocket
        self.timeout = args.timeout
        self.url = (f"{ws_base(args.url)}/api/kernels/{args.kernel}/channels"
                    f"?token={args.token}")
        self.ws = None
        self.connect()

    def connect(self):
        # E2B's JupyterExtension uses a fresh uuid4 session per websocket.
        self.ws = self.cls(url=self.url, session_id=str(uuid.uuid4()))
        self.ws.connect(timeout=self.timeout)

    def execute(self, code, tally=None):
        cb = None
        if tally is not None:
            cb = lambda m: tally.add(m.line)  # noqa: E731  (ProcessMessage.line)
        msg_id = self.ws.send_execution_message(code, on_stdout=cb)
        execution = self.ws.get_result(msg_id, timeout=self.timeout)
        if execution.error is not None:
            raise PeerError(f"cell failed: {execution.error.name}: {execution.error.value}")

    def reconnect(self):
        """close() + new JupyterKernelWebSocket + connect() (new session, no replay)."""
        t0 = now()
        self.ws.close()
        t1 = now()
        self.connect()
        t2 = now()
        return t1 - t0, t2 - t1

    def close(self):
        try:
            self.ws.close()
            time.sleep(0.2)  # let its websocket thread send the close frame
        except Exception:
            pass


PEER_CLASSES = {"zmq": ZmqPeer, "websocket-client": WebsocketClientPeer, "e2b-ws": E2bWsPeer}


# --------------------------------------------------------------------------- measurements


def m_roundtrip(peer, args, out):
    for _ in range(args.warmup):
        peer.execute("1")
    samples = []
    # CPU time per measured execute, in µs, of this process (all threads) and, when found in
    # /proc, of the kernel and of the server (pid in $E2B_BENCH_SERVER_PID).
    pids = {"server": os.environ.get("E2B_BENCH_SERVER_PID"), "kernel": kernel_pid(args.kernel)}
    cpu0 = {k: task_cpu_ns(p) for k, p in pids.items()}
    t_cpu = time.process_time()
    for _ in range(args.iterations):
        t0 = now()
        peer.execute("1")
        samples.append(ms(now() - t0))
    n = max(1, args.iterations)
    out["client_cpu_us_per_iter"] = round((time.process_time() - t_cpu) * 1e6 / n)
    for k, p in pids.items():
        c1 = task_cpu_ns(p)
        if cpu0[k] is not None and c1 is not None:
            out[f"{k}_cpu_us_per_iter"] = round((c1 - cpu0[k]) / 1e3 / n)
    out["samples_ms"] = samples
    out.update(summary(samples))


def m_stream(peer, args, out):
    code = stream_code(args.mb)
    expected = int(args.mb) * 1024 * 1024
    out["rss_before_kib"] = maxrss_kib()
    for _ in range(args.warmup):
        peer.execute(code, Tally())
    samples, got, nmsgs, rates = [], [], [], []
    for _ in range(args.iterations):
        tally = Tally()
        t0 = now()
        peer.execute(code, tally)
        dt = now() - t0
        samples.append(ms(dt))
        got.append(tally.bytes)
        nmsgs.append(tally.messages)
        rates.append(round(tally.bytes / (1024 * 1024) / dt, 3))
    out["samples_ms"] = samples
    out.update(summary(samples))
    out["mib"] = int(args.mb)
    out["chunk_bytes"] = CHUNK
    out["bytes_expected"] = expected
    out["bytes_received"] = got
    out["stream_messages"] = nmsgs
    out["complete"] = all(b == expected for b in got)
    out["mib_per_s"] = rates
    out["mib_per_s_p50"] = pct(sorted(rates), 50)
    out["peak_rss_kib"] = maxrss_kib()


def m_reconnect(peer, args, out):
    if isinstance(peer, ZmqPeer):
        raise NotImplementedError
    out["same_session"] = isinstance(peer, WebsocketClientPeer)
    for _ in range(args.warmup):
        peer.reconnect()
        peer.execute("1")
    total, closes, handshakes = [], [], []
    for _ in range(args.iterations):
        t0 = now()
        c, h = peer.reconnect()
        peer.execute("1")
        total.append(ms(now() - t0))
        closes.append(ms(c))
        handshakes.append(ms(h))
    out["samples_ms"] = total
    out.update(summary(total))
    out["close_samples_ms"] = closes
    out.update(summary(closes, "close_"))
    out["handshake_samples_ms"] = handshakes
    out.update(summary(handshakes, "handshake_"))


def m_create(args, out):
    """Kernel start + connect + first execute("1"), each iteration on a new kernel.

    zmq / websocket-client: POST /api/kernels, connect, execute. e2b-ws: what E2B's
    create_kernel() did: POST /api/sessions, PATCH its path, websocket connect, execute.
    The kernel is deleted after each iteration (not timed).
    """
    import copy

    samples, starts, connects = [], [], []
    for i in range(args.warmup + args.iterations):
        t0 = now()
        if args.peer == "e2b-ws":
            sess = rest(args, "POST", "/api/sessions",
                        {"path": str(uuid.uuid4()), "kernel": {"name": "python3"},
                         "type": "notebook", "name": str(uuid.uuid4())})
            rest(args, "PATCH", f"/api/sessions/{sess['id']}", {"path": "/tmp"})
            kernel = sess["kernel"]["id"]
        else:
            kernel = rest(args, "POST", "/api/kernels", {"name": "python3"})["id"]
        t1 = now()
        a = copy.copy(args)
        a.kernel = kernel
        a.connection_file = None
        if args.peer == "zmq":
            rt = os.environ.get("JUPYTER_RUNTIME_DIR", "")
            path = os.path.join(rt, f"kernel-{kernel}.json")
            while not os.path.exists(path) and now() - t0 < args.timeout:
                time.sleep(0.002)
            a.connection_file = path
        peer = PEER_CLASSES[args.peer](a)
        t2 = now()
        peer.execute("1")
        t3 = now()
        peer.close()
        try:
            rest(args, "DELETE", f"/api/kernels/{kernel}")
        except Exception:
            pass
        if i >= args.warmup:
            samples.append(ms(t3 - t0))
            starts.append(ms(t1 - t0))
            connects.append(ms(t2 - t1))
    out["samples_ms"] = samples
    out.update(summary(samples))
    out["start_samples_ms"] = starts
    out["connect_samples_ms"] = connects


def m_concurrent(args, out):
    """One client and one thread per kernel (--kernel a,b,c,...), each running "1" in a loop
    for --duration seconds after --settle seconds of warm-up; total cells/s, and the memory and
    threads each connection adds (VmRSS/Threads before and after connecting, /proc/self/status).
    """
    import copy
    import threading

    kernels = [k for k in args.kernel.split(",") if k]
    out["connections"] = len(kernels)
    out["rss_before_kib"] = proc_status("VmRSS")
    out["threads_before"] = proc_status("Threads")
    peers = []
    for k in kernels:
        a = copy.copy(args)
        a.kernel = k
        a.connection_file = None
        peers.append(PEER_CLASSES[args.peer](a))
    for p in peers:  # one execute each, then let kernels and background threads settle
        p.execute("1")
    time.sleep(2.0)
    out["rss_connected_kib"] = proc_status("VmRSS")
    out["threads_connected"] = proc_status("Threads")
    n = len(kernels)
    out["rss_per_connection_kib"] = round((out["rss_connected_kib"] - out["rss_before_kib"]) / n, 1)
    out["threads_per_connection"] = round((out["threads_connected"] - out["threads_before"]) / n, 2)

    start = now() + 0.2
    measure_from = start + args.settle
    stop_at = measure_from + args.duration
    counts = [0] * n
    lat = [[] for _ in range(n)]
    errors = []

    def work(i):
        p = peers[i]
        while now() < start:
            time.sleep(0.001)
        try:
            while True:
                t0 = now()
                if t0 >= stop_at:
                    break
                p.execute("1")
                t1 = now()
                if t0 >= measure_from and t1 <= stop_at:
                    counts[i] += 1
                    lat[i].append(ms(t1 - t0))
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from + args.duration / 2 - now()))
    out["threads_running"] = proc_status("Threads")
    for t in threads:
        t.join(timeout=max(1.0, stop_at - now() + args.timeout))
    if errors:
        raise PeerError(errors[0])
    if any(t.is_alive() for t in threads):
        raise PeerError("a worker thread did not finish")
    total = sum(counts)
    out["duration_s"] = args.duration
    out["cells"] = total
    out["cells_per_s"] = round(total / args.duration, 2)
    out["cells_per_connection"] = counts
    samples = sorted(x for per_connection in lat for x in per_connection)
    out["samples_ms"] = samples
    out.update(summary(samples))
    out["peak_rss_kib"] = proc_status("VmHWM")
    for p in peers:
        p.close()


MEASURE_FNS = {"roundtrip": m_roundtrip, "stream": m_stream, "reconnect": m_reconnect}
SELF_CONNECTING = {"create": m_create, "concurrent": m_concurrent}

UNSUPPORTED = {
    ("zmq", "reconnect"): "zmq peer has no websocket; ZMQ sockets reconnect transparently, "
                          "so there is no close/reconnect cycle to measure",
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("peer", choices=PEERS)
    ap.add_argument("measurement", choices=MEASUREMENTS)
    ap.add_argument("--url", required=True, help="jupyter_server base URL, http://127.0.0.1:PORT")
    ap.add_argument("--token", required=True)
    ap.add_argument("--kernel", required=True, help="kernel id")
    ap.add_argument("--connection-file", help="kernel-<id>.json (zmq peer); default "
                    "$JUPYTER_RUNTIME_DIR/kernel-<id>.json")
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--mb", type=int, default=20, help="MiB printed by the stream cell")
    ap.add_argument("--skip-utf8-validation", action="store_true",
                    help="websocket-client peer only: skip its pure-Python UTF-8 check")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds, per execute and per connect")
    ap.add_argument("--duration", type=float, default=10.0,
                    help="concurrent: seconds measured")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="concurrent: seconds of load before measuring")
    args = ap.parse_args(argv)
    it, wu = DEFAULTS[args.measurement]
    args.iterations = it if args.iterations is None else args.iterations
    args.warmup = wu if args.warmup is None else args.warmup

    out = {"schema": SCHEMA_VERSION, "peer": args.peer, "measurement": args.measurement}
    reason = UNSUPPORTED.get((args.peer, args.measurement))
    if reason:
        out["unsupported"] = reason
        emit(out, 0)

    out.update(iterations=args.iterations, warmup=args.warmup)
    peer = None
    code = 0
    try:
        if args.measurement in SELF_CONNECTING:
            out["completion"] = PEER_CLASSES[args.peer].completion
            SELF_CONNECTING[args.measurement](args, out)
            out["peak_rss_kib"] = maxrss_kib()
            out["versions"] = versions()
            out["pid"] = os.getpid()
            emit(out, 0)
        t0 = now()
        peer = PEER_CLASSES[args.peer](args)
        out["connect_ms"] = ms(now() - t0)
        out["completion"] = peer.completion
        if getattr(peer, "variant", None):
            out["variant"] = peer.variant
        MEASURE_FNS[args.measurement](peer, args, out)
    except NotImplementedError:
        out = {k: out[k] for k in ("schema", "peer", "measurement")}
        out["unsupported"] = f"{args.peer} cannot do {args.measurement}"
    except Exception as e:  # still exactly one JSON object
        out["error"] = f"{type(e).__name__}: {e}"[:1000]
        code = 1
    if peer is not None:
        peer.close()
    if "unsupported" not in out:
        out.setdefault("peak_rss_kib", maxrss_kib())
        out["versions"] = versions()
        out["pid"] = os.getpid()
    emit(out, code)

if __name__ == "__main__":
    main()
