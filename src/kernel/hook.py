# Installed by e2b-blocking into every Python kernel it starts (silently, once per kernel start).
#
# jupyter_server replays what it buffered while a client was away, but the message it wrote
# into the dying socket is gone, and nothing in the Jupyter protocol numbers messages. This hook
# numbers the messages the kernel sends for an execute_request that the client needs (output,
# execute_reply and the final idle; metadata "e2b_seq": 1, 2, ...) and keeps a bounded ring of
# recent ones, so the client sees a gap in
# the numbers and can fetch what is missing with replay(), in chunks. Replay requests and the
# client's probes (msg_id prefix "e2b-replay-") are neither numbered nor kept.
#
# send() runs for every message the kernel sends, so it does as little as it can: the filter
# comes first, and the replay entry is stored as a tuple and only turned into a dict (with an
# ISO date) if replay() asks for it.
import collections
import sys
import threading
import types


def _install():
    existing = sys.modules.get("__e2b_hook")
    if existing is not None and getattr(existing, "session", None) is get_ipython().kernel.session:
        return
    session = get_ipython().kernel.session
    lock = threading.RLock()
    records = collections.OrderedDict()  # parent msg_id -> _Record, oldest first
    seen = collections.OrderedDict()  # parent msg_ids that reached the kernel
    # "split": characters per stream message, up to 1 MiB of UTF-8.
    limits = {"records": 64, "seen": 8192, "bytes": 64 << 20, "split": 256 << 10}
    totals = {"bytes": 0}
    # What is numbered: what carries output, and the reply and idle that end an execution.
    # A lost `busy` or `execute_input` carries nothing the client needs, so it is not
    # numbered: its loss is no gap, and a ring that dropped it is no lost output.
    numbered = frozenset((
        "stream", "display_data", "execute_result", "error", "clear_output",
        "update_display_data", "execute_reply",
    ))

    def _counts(kind, body):
        if kind == "status":
            return isinstance(body, dict) and body.get("execution_state") == "idle"
        return kind in numbered
    original = session.send

    class _Record:
        __slots__ = ("next", "msgs", "lost_below", "size")

        def __init__(self):
            self.next = 1
            self.msgs = collections.deque()  # (seq, msg_type, content, date, size)
            self.lost_below = 1
            self.size = 0

    def _size(content):
        if isinstance(content, dict):
            return 64 + sum(_size(v) for v in content.values())
        if isinstance(content, (list, tuple)):
            return 16 + sum(_size(v) for v in content)
        if isinstance(content, (str, bytes)):
            return len(content)
        return 16

    def _evict():
        while len(records) > limits["records"]:
            _, rec = records.popitem(last=False)
            totals["bytes"] -= rec.size
        while totals["bytes"] > limits["bytes"] and records:
            pid, rec = next(iter(records.items()))
            if len(records) > 1:
                records.pop(pid)
                totals["bytes"] -= rec.size
                continue
            while rec.msgs and totals["bytes"] > limits["bytes"]:
                entry = rec.msgs.popleft()
                rec.size -= entry[4]
                totals["bytes"] -= entry[4]
                rec.lost_below = entry[0] + 1
            break

    def _split_stream(msg_or_type, content, parent, header):
        # A stream message over split_chars as several messages (None when it is not one).
        # ipykernel 7 sends ready-made message dicts, older versions a type and content.
        if msg_or_type.__class__ is str:
            if msg_or_type != "stream" or header is not None or not content:
                return None
            body, parent_header = content, parent
        elif isinstance(msg_or_type, dict):
            if msg_or_type.get("header", {}).get("msg_type") != "stream":
                return None
            body, parent_header = msg_or_type.get("content") or {}, msg_or_type.get("parent_header")
        else:
            return None
        text = body.get("text")
        split = limits["split"]
        if not isinstance(text, str) or len(text) <= split:
            return None
        return [
            session.msg("stream", dict(body, text=text[i:i + split]), parent=parent_header)
            for i in range(0, len(text), split)
        ]

    iopub = getattr(get_ipython().kernel, "iopub_thread", None)

    def _lossless(thread):
        # IOPub is a PUB socket: at its high-water mark (1000 messages per subscriber) it drops
        # what it is given, the idle that ends an execution and the answer to a replay request
        # included, and the client then waits for them for ever. ipykernel 7's XPUB can wait
        # for the subscriber instead, so a flood goes at the pace jupyter_server reads it.
        try:
            import zmq

            sock = getattr(thread, "socket", None)
            if sock is not None and sock.socket_type == zmq.XPUB:
                sock.setsockopt(zmq.XPUB_NODROP, 1)
        except Exception:
            pass

    if iopub is not None and hasattr(iopub, "schedule"):
        # The socket belongs to the IOPub thread: set it there.
        iopub.schedule(lambda: _lossless(iopub))
        # A flush waits for the IOPub thread to have sent what came before, which now goes at
        # the server's pace: past ipykernel's 10 s, the kernel writes "IOStream.flush timed
        # out" into the cell's stderr (a 1 GiB print takes ~15 s). Nothing is lost either way.
        for out in (sys.stdout, sys.stderr):
            if hasattr(out, "flush_timeout"):
                out.flush_timeout = 120

    def _io_socket():
        # The IOPub socket itself when this runs on the IOPub thread (OutStream's flush), else
        # None. Sending a stream's pieces through the thread's event pipe from the thread
        # itself fills that pipe (1000 + 1000 events) with no one left to empty it: the
        # thread blocks for ever, and the kernel's output with it (a 512 MiB print).
        if iopub is None or threading.current_thread() is not getattr(iopub, "thread", None):
            return None
        return getattr(iopub, "socket", None)

    def send(stream, msg_or_type, content=None, parent=None, ident=None, buffers=None,
             track=False, header=None, metadata=None):
        pieces = _split_stream(msg_or_type, content, parent, header)
        if pieces is not None:
            # ipykernel batches a fast writer's output into one message per flush, tens of MB
            # for a tight loop. Smaller pieces cross a link that keeps being cut, and a replay
            # (at least one message per answer) stays small too.
            target = _io_socket() or stream
            msg = None
            for piece in pieces:
                msg = send(target, piece, ident=ident, buffers=buffers, track=track,
                           metadata=metadata)
            return msg
        pid = None
        try:
            if msg_or_type.__class__ is str:
                if parent and _counts(msg_or_type, content):
                    ph = parent.get("header", parent)
                    if ph.get("msg_type") == "execute_request":
                        pid = ph.get("msg_id")
            elif isinstance(msg_or_type, dict):
                kind = msg_or_type.get("header", {}).get("msg_type")
                ph = msg_or_type.get("parent_header") or {}
                if (_counts(kind, msg_or_type.get("content"))
                        and ph.get("msg_type") == "execute_request"):
                    pid = ph.get("msg_id")
        except Exception:
            pid = None
        if not pid or pid.startswith("e2b-replay-"):
            return original(stream, msg_or_type, content=content, parent=parent, ident=ident,
                            buffers=buffers, track=track, header=header, metadata=metadata)
        with lock:
            rec = records.get(pid)
            if rec is None:
                rec = records[pid] = _Record()
                seen[pid] = True
                while len(seen) > limits["seen"]:
                    seen.popitem(last=False)
            seq = rec.next
            rec.next = seq + 1
            if msg_or_type.__class__ is str:
                metadata = dict(metadata) if metadata else {}
                metadata["e2b_seq"] = seq
            else:
                msg_or_type.setdefault("metadata", {})["e2b_seq"] = seq
            msg = original(stream, msg_or_type, content=content, parent=parent, ident=ident,
                           buffers=buffers, track=track, header=header, metadata=metadata)
            try:
                hdr = msg["header"]
                body = msg.get("content", {})
                kind = hdr.get("msg_type")
                if kind == "stream":
                    size = 128 + len(body.get("text", ""))
                elif kind == "status":
                    size = 160
                else:
                    size = 128 + _size(body)
                rec.msgs.append((seq, kind, body, hdr.get("date"), size))
                rec.size += size
                totals["bytes"] += size
                if totals["bytes"] > limits["bytes"] or len(records) > limits["records"]:
                    _evict()
            except Exception:
                pass
            return msg

    def _entry(seq, kind, body, date):
        return {
            "seq": seq,
            "msg_type": kind,
            "channel": "shell" if kind == "execute_reply" else "iopub",
            "content": body,
            "date": date.isoformat() if hasattr(date, "isoformat") else date,
        }

    def replay(pid, from_seq, max_bytes=None):
        # Answers in chunks of at most max_bytes (at least one message), so an answer is small
        # enough to cross a link that keeps being cut; the client asks again from "upto".
        with lock:
            if pid not in seen:
                out = {"state": "unknown"}
            elif pid not in records:
                out = {"state": "evicted", "records": len(records)}
            else:
                rec = records[pid]
                taken = []
                size = 0
                for s, k, b, d, n in rec.msgs:
                    if s < from_seq:
                        continue
                    if taken and max_bytes is not None and size + n > max_bytes:
                        break
                    taken.append(_entry(s, k, b, d))
                    size += n
                out = {
                    "state": "known",
                    "lost_below": rec.lost_below,
                    "next": rec.next,
                    "upto": taken[-1]["seq"] + 1 if taken else rec.next,
                    "messages": taken,
                }
        out["parent"] = pid
        from IPython.display import publish_display_data
        publish_display_data({"application/x-e2b-replay+json": out})

    # Per-execution env vars travel in the execute_request's metadata ("e2b_envs"): set before
    # the cell runs and put back after it, in the kernel, so they cost no extra round trip and
    # are restored even if the client is cut off. Silent cells (set-up, replays) fire neither.
    ip = get_ipython()
    saved_env = []

    def _pre_run_cell(info=None):
        import os
        try:
            envs = (ip.kernel.get_parent("shell") or {}).get("metadata", {}).get("e2b_envs")
        except Exception:
            envs = None
        if not envs:
            return
        saved_env.append({k: os.environ.get(k) for k in envs})
        os.environ.update(envs)

    def _post_run_cell(result=None):
        import os
        while saved_env:
            for k, v in saved_env.pop().items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    for name, fn in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        old = getattr(existing, name, None)
        if old is not None:
            try:
                ip.events.unregister(name, old)
            except ValueError:
                pass
        ip.events.register(name, fn)

    mod = types.ModuleType("__e2b_hook")
    mod.pre_run_cell = _pre_run_cell
    mod.post_run_cell = _post_run_cell
    mod.session = session
    # Where the kernel started: set-up resolves a relative cwd against it, so running set-up
    # again (after a cut) lands in the same directory.
    mod.root = __import__("os").getcwd()
    mod.replay = replay
    mod.limits = limits
    session.send = send
    sys.modules["__e2b_hook"] = mod


_install()
del _install
