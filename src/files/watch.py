# Watches directories for e2b-blocking's `files().watch_dir()`, inside a private kernel.
#
# A thread per watch reads inotify (through ctypes; Linux only) and appends numbered events to
# a bounded buffer. The client long-polls it with short cells: poll(id, after, wait) drops what
# the client already has (seq <= after) and returns the rest, waiting up to `wait` seconds for
# one. A long-running cell would not do: after a connection cut the client asks the kernel for
# what it missed with a cell that queues behind the running one. Short cells are recovered
# like any cell, and a poll asked again returns the same events, which the client drops by seq.
import threading

_watches = {}


class _Failed(Exception):
    def __init__(self, kind, path="", message=""):
        Exception.__init__(self, message)
        self.kind, self.path, self.message = kind, path, message


class _Watch:
    IN_MODIFY, IN_ATTRIB = 0x2, 0x4
    IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
    IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
    IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x4000, 0x8000, 0x40000000
    IN_EXCL_UNLINK = 0x04000000

    def __init__(self, spec):
        import ctypes
        import os
        import sys

        shown = spec.get("path") or "."
        self.root = os.path.abspath(os.path.expanduser(shown))
        if not os.path.exists(self.root):
            raise _Failed("not_found", shown)
        if not os.path.isdir(self.root):
            raise _Failed("not_a_directory", shown)
        if not sys.platform.startswith("linux"):
            raise _Failed("unsupported", shown, "watching needs inotify (Linux)")
        self.recursive = bool(spec.get("recursive"))
        self.capacity = int(spec.get("capacity") or 65536)
        self.mask = (self.IN_MODIFY | self.IN_ATTRIB | self.IN_MOVED_FROM | self.IN_MOVED_TO
                     | self.IN_CREATE | self.IN_DELETE | self.IN_DELETE_SELF | self.IN_MOVE_SELF
                     | self.IN_EXCL_UNLINK)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise _Failed("os", shown, "inotify_init1: " + os.strerror(ctypes.get_errno()))
        self.wds = {}  # watch descriptor -> directory relative to root ("" for root)
        self.cond = threading.Condition()
        self.events = []  # [seq, kind, path, dropped]
        self.seq = 0
        self.dropped = 0
        self.ended = None
        self.stopping = False
        # Paths a scan of a new directory reported, whose own inotify create may come in the
        # next read: reported once only.
        self.scanned = set()
        try:
            if self._add("") < 0:
                err = ctypes.get_errno()
                kind = "permission_denied" if err == 13 else "os"
                raise _Failed(kind, shown, os.strerror(err))
            if self.recursive:
                for dirpath, dirnames, _ in os.walk(self.root):
                    rel = os.path.relpath(dirpath, self.root)
                    for d in dirnames:
                        self._add(self._join("" if rel == "." else rel, d))
        except BaseException:
            os.close(self.fd)
            raise
        self.thread = threading.Thread(target=self._run, name="e2b-watch", daemon=True)
        self.thread.start()

    @staticmethod
    def _join(rel, name):
        return rel + "/" + name if rel else name

    def _add(self, rel):
        import os

        path = os.path.join(self.root, rel) if rel else self.root
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), self.mask)
        if wd >= 0:
            self.wds[wd] = rel
        return wd

    def _emit(self, batch, kind, path):
        batch.append((kind, path))

    def _add_tree(self, batch, rel):
        # A new directory's watch starts after its creation: what was made in it before that
        # is found by a scan and reported as created.
        import os

        if self._add(rel) < 0:
            return
        try:
            names = sorted(os.listdir(os.path.join(self.root, rel)))
        except OSError:
            return
        for name in names:
            child = self._join(rel, name)
            batch.append(("create", child))
            self.scanned.add(child)
            full = os.path.join(self.root, child)
            if os.path.isdir(full) and not os.path.islink(full):
                self._add_tree(batch, child)

    def _publish(self, batch, ended=None):
        with self.cond:
            for kind, path in batch:
                if len(self.events) >= self.capacity:
                    self.dropped += 1
                    continue
                if self.dropped:
                    self.seq += 1
                    self.events.append([self.seq, "overflow", "", self.dropped])
                    self.dropped = 0
                self.seq += 1
                self.events.append([self.seq, kind, path, None])
            if ended is not None:
                self.ended = ended
            self.cond.notify_all()

    def _run(self):
        import os
        import select
        import struct

        header = struct.Struct("iIII")
        reason = "stopped"
        try:
            while not self.stopping:
                ready, _, _ = select.select([self.fd], [], [], 0.25)
                if not ready:
                    continue
                try:
                    data = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    continue
                seen, self.scanned = self.scanned, set()
                batch = []
                done = False
                i = 0
                while i + header.size <= len(data):
                    wd, ev, _cookie, size = header.unpack_from(data, i)
                    name = data[i + header.size:i + header.size + size].rstrip(b"\0")
                    i += header.size + size
                    if ev & self.IN_Q_OVERFLOW:
                        batch.append(("overflow", ""))
                        continue
                    rel = self.wds.get(wd)
                    if rel is None:
                        continue
                    if ev & self.IN_IGNORED:
                        self.wds.pop(wd, None)
                        if rel == "":
                            done = True
                        continue
                    if ev & (self.IN_DELETE_SELF | self.IN_MOVE_SELF):
                        if rel == "":
                            reason = "removed" if ev & self.IN_DELETE_SELF else "moved"
                            done = True
                        continue
                    path = self._join(rel, name.decode("utf-8", "replace"))
                    is_dir = bool(ev & self.IN_ISDIR)
                    if ev & (self.IN_CREATE | self.IN_MOVED_TO):
                        if path in seen:
                            seen.discard(path)
                        else:
                            batch.append(("create", path))
                        if is_dir and self.recursive:
                            self._add_tree(batch, path)
                    elif ev & self.IN_MODIFY:
                        batch.append(("write", path))
                    elif ev & self.IN_DELETE:
                        batch.append(("remove", path))
                    elif ev & self.IN_MOVED_FROM:
                        batch.append(("rename", path))
                        if is_dir:
                            # Its watches now name a path that no longer exists.
                            for w, r in list(self.wds.items()):
                                if r == path or r.startswith(path + "/"):
                                    self.libc.inotify_rm_watch(self.fd, w)
                                    self.wds.pop(w, None)
                    elif ev & self.IN_ATTRIB:
                        batch.append(("chmod", path))
                if done:
                    if reason == "stopped":
                        reason = "removed"
                    self._publish(batch, reason)
                    return
                self._publish(batch)
        except Exception as e:
            reason = "error: %s" % e
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass
            with self.cond:
                if self.ended is None:
                    self.ended = reason
                self.cond.notify_all()

    def poll(self, after, wait):
        import time

        until = time.monotonic() + wait
        with self.cond:
            while self.events and self.events[0][0] <= after:
                self.events.pop(0)
            while not self.events and self.ended is None:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return {"events": list(self.events), "ended": self.ended if not self.events else None}


def _out(result):
    import base64
    import json

    return base64.b64encode(json.dumps(result).encode()).decode("ascii")


def start(spec):
    try:
        w = _Watch(spec)
    except _Failed as e:
        return _out({"error": e.kind, "path": e.path, "message": e.message})
    except OSError as e:
        return _out({"error": "os", "path": spec.get("path") or ".", "message": str(e)})
    wid = "%d" % id(w)
    _watches[wid] = w
    return _out({"ok": {"id": wid, "root": w.root}})


def poll(wid, after, wait):
    w = _watches.get(wid)
    if w is None:
        return _out({"error": "gone", "message": "the watch is gone (did the kernel restart?)"})
    return _out({"ok": w.poll(after, wait)})


def stop(wid):
    w = _watches.pop(wid, None)
    if w is not None:
        w.stopping = True
        w.thread.join(2)
    return _out({"ok": {}})


def _install():
    import sys
    import types

    mod = types.ModuleType("__e2b_watch")
    mod.start, mod.poll, mod.stop = start, poll, stop
    sys.modules["__e2b_watch"] = mod


_install()
