"""A stand-in for E2B's envd (port 49983): its HTTP part (spec/envd/envd.yaml: /health, /envs,
/files) and its Connect-RPC services process.Process and filesystem.Filesystem
(spec/envd/process/process.proto, spec/envd/filesystem/filesystem.proto; vendored in
tests/spec/envd). The Connect protocol, its codecs and the message classes come from PyPI:
`connectrpc` serves the services through the stubs E2B publishes in its SDK (`e2b.envd.*`,
generated from those protos), so a field or framing that differs from the protos fails here.

What it does as envd does (facts from envd's spec and E2B's SDK): relative paths resolve against
the user's home; `Authorization: Basic base64(user:)` names the user (default `user`; `root`;
anything else is refused as an unknown user); `X-Access-Token` is required when the sandbox has
a token (all but /health); processes outlive the stream that started them; `Connect` attaches
from the moment of attaching (no replay); `Remove` of a missing path succeeds (os.RemoveAll).
Both users act as the account the rig runs as (the rig has one account).
"""

import asyncio
import base64
import ctypes
import fcntl
import grp
import hashlib
import hmac
import json
import os
import pty
import pwd
import shutil
import signal
import stat
import struct
import termios
import time
import urllib.parse
import uuid

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from protobuf import Oneof
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from e2b.envd.filesystem import filesystem_connect, filesystem_pb as fs
from e2b.envd.process import process_connect, process_pb as pb

# The rig binds a directory over /home only (the host's /root may hold its Python), so
# root's home is /home/root here, /root on E2B.
HOMES = {"user": "/home/user", "root": "/home/root"}
DEFAULT_USER = "user"
CHUNK = 32 * 1024


class Sandbox:
    """What the services share: the access token, the sandbox's env vars, its processes."""

    def __init__(self, token, envs):
        self.token = token
        self.envs = envs
        self.processes = {}


def user_of(headers):
    """The user an request acts as, from `Authorization: Basic base64(user:)`."""
    value = headers.get("authorization")
    if not value:
        return DEFAULT_USER
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        raise ConnectError(Code.UNAUTHENTICATED, "invalid authorization header")
    try:
        user = base64.b64decode(encoded).decode().split(":", 1)[0]
    except Exception:
        raise ConnectError(Code.UNAUTHENTICATED, "invalid authorization header")
    if user not in HOMES:
        raise ConnectError(
            Code.UNAUTHENTICATED,
            f"error looking up user '{user}': user: unknown user {user}",
        )
    return user


def resolve(path, user):
    """An absolute path; a relative one is relative to the user's home, `~` is the home."""
    home = HOMES[user]
    if path.startswith("~"):
        path = home + path[1:]
    if not path.startswith("/"):
        path = os.path.join(home, path)
    return os.path.normpath(path)


def permissions(mode):
    return stat.filemode(mode)


def entry(path):
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        kind = fs.FileType.SYMLINK
        target = os.readlink(path)
        try:
            followed = os.stat(path)
            kind = (
                fs.FileType.DIRECTORY if stat.S_ISDIR(followed.st_mode) else fs.FileType.FILE
            )
        except OSError:
            pass
    else:
        kind = fs.FileType.DIRECTORY if stat.S_ISDIR(st.st_mode) else fs.FileType.FILE
        target = None
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    info = fs.EntryInfo(
        name=os.path.basename(path) or "/",
        type=kind,
        path=path,
        size=st.st_size,
        mode=stat.S_IMODE(st.st_mode) | (0o20000000000 if stat.S_ISDIR(st.st_mode) else 0),
        permissions=permissions(st.st_mode),
        owner=owner,
        group=group,
        modified_time=Timestamp.from_nanos(st.st_mtime_ns),
    )
    if target is not None:
        info.symlink_target = target
    return info


def os_error(e, path):
    if isinstance(e, FileNotFoundError):
        return ConnectError(Code.NOT_FOUND, f"path '{path}' does not exist")
    if isinstance(e, PermissionError):
        return ConnectError(Code.PERMISSION_DENIED, f"permission denied: {path}")
    if isinstance(e, NotADirectoryError):
        return ConnectError(Code.INVALID_ARGUMENT, f"path '{path}' is not a directory")
    if isinstance(e, FileExistsError):
        return ConnectError(Code.ALREADY_EXISTS, f"path '{path}' already exists")
    return ConnectError(Code.INTERNAL, f"error on '{path}': {e}")


# ----- filesystem.Filesystem -----

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_ISDIR, IN_IGNORED = 0x400, 0x40000000, 0x8000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
WATCH_MASK = IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_libc = ctypes.CDLL(None, use_errno=True)


class Watcher:
    """A directory watch on inotify, reporting as envd (fsnotify) does: Create, Write, Remove,
    Rename (a move away), Chmod; names relative to the watched directory."""

    def __init__(self, root, recursive):
        self.root = root
        self.recursive = recursive
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise ConnectError(Code.INTERNAL, "inotify_init1 failed")
        self.dirs = {}
        self.events = []
        self.waiters = []
        self.add(root)
        if recursive:
            for dirpath, dirnames, _ in os.walk(root):
                for d in dirnames:
                    self.add(os.path.join(dirpath, d))
        asyncio.get_running_loop().add_reader(self.fd, self.read)

    def add(self, path):
        wd = _libc.inotify_add_watch(self.fd, path.encode(), WATCH_MASK)
        if wd >= 0:
            self.dirs[wd] = path

    def read(self):
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        i = 0
        while i + 16 <= len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, i)
            name = data[i + 16 : i + 16 + length].rstrip(b"\0").decode(errors="replace")
            i += 16 + length
            base = self.dirs.get(wd)
            if base is None or not name:
                continue
            full = os.path.join(base, name)
            rel = os.path.relpath(full, self.root)
            if mask & IN_CREATE or mask & IN_MOVED_TO:
                kind = fs.EventType.CREATE
                if mask & IN_ISDIR and self.recursive:
                    self.add(full)
            elif mask & IN_DELETE:
                kind = fs.EventType.REMOVE
            elif mask & IN_MOVED_FROM:
                kind = fs.EventType.RENAME
            elif mask & IN_MODIFY:
                kind = fs.EventType.WRITE
            elif mask & IN_ATTRIB:
                kind = fs.EventType.CHMOD
            else:
                continue
            event = fs.FilesystemEvent(name=rel, type=kind)
            self.events.append(event)
        for w in self.waiters:
            if not w.done():
                w.set_result(None)
        self.waiters.clear()

    async def wait(self, timeout):
        if self.events:
            return
        w = asyncio.get_running_loop().create_future()
        self.waiters.append(w)
        try:
            await asyncio.wait_for(w, timeout)
        except asyncio.TimeoutError:
            pass

    def take(self):
        out, self.events = self.events, []
        return out

    def close(self):
        try:
            asyncio.get_running_loop().remove_reader(self.fd)
        except Exception:
            pass
        os.close(self.fd)


def watched_dir(request, ctx):
    path = resolve(request.path, user_of(ctx.request_headers))
    if not os.path.exists(path):
        raise ConnectError(Code.NOT_FOUND, f"path '{path}' does not exist")
    if not os.path.isdir(path):
        raise ConnectError(Code.INVALID_ARGUMENT, f"path '{path}' is not a directory")
    return path


class Filesystem:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.watchers = {}

    async def stat(self, request, ctx):
        path = resolve(request.path, user_of(ctx.request_headers))
        try:
            return fs.StatResponse(entry=entry(path))
        except OSError as e:
            raise os_error(e, path)

    async def make_dir(self, request, ctx):
        path = resolve(request.path, user_of(ctx.request_headers))
        if os.path.isdir(path):
            raise ConnectError(Code.ALREADY_EXISTS, f"directory '{path}' already exists")
        try:
            os.makedirs(path)
            return fs.MakeDirResponse(entry=entry(path))
        except OSError as e:
            raise os_error(e, path)

    async def move(self, request, ctx):
        user = user_of(ctx.request_headers)
        source = resolve(request.source, user)
        destination = resolve(request.destination, user)
        try:
            os.lstat(source)
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            os.rename(source, destination)
            return fs.MoveResponse(entry=entry(destination))
        except OSError as e:
            raise os_error(e, source)

    async def list_dir(self, request, ctx):
        path = resolve(request.path, user_of(ctx.request_headers))
        depth = request.depth or 1
        try:
            if not os.path.isdir(path):
                os.lstat(path)
                raise ConnectError(Code.INVALID_ARGUMENT, f"path '{path}' is not a directory")
            entries = []

            def walk(directory, level):
                for name in sorted(os.listdir(directory)):
                    full = os.path.join(directory, name)
                    entries.append(entry(full))
                    if level < depth and os.path.isdir(full) and not os.path.islink(full):
                        walk(full, level + 1)

            walk(path, 1)
            return fs.ListDirResponse(entries=entries)
        except OSError as e:
            raise os_error(e, path)

    async def remove(self, request, ctx):
        path = resolve(request.path, user_of(ctx.request_headers))
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
            return fs.RemoveResponse()
        except OSError as e:
            raise os_error(e, path)

    async def watch_dir(self, request, ctx):
        path = watched_dir(request, ctx)
        watcher = Watcher(path, request.recursive)
        try:
            yield fs.WatchDirResponse(event=Oneof("start", fs.WatchDirResponse.StartEvent()))
            while True:
                await watcher.wait(30)
                events = watcher.take()
                if not events:
                    yield fs.WatchDirResponse(
                        event=Oneof("keepalive", fs.WatchDirResponse.KeepAlive())
                    )
                for e in events:
                    yield fs.WatchDirResponse(event=Oneof("filesystem", e))
        finally:
            watcher.close()

    async def create_watcher(self, request, ctx):
        path = watched_dir(request, ctx)
        watcher_id = uuid.uuid4().hex
        self.watchers[watcher_id] = Watcher(path, request.recursive)
        return fs.CreateWatcherResponse(watcher_id=watcher_id)

    async def get_watcher_events(self, request, ctx):
        watcher = self.watchers.get(request.watcher_id)
        if watcher is None:
            raise ConnectError(Code.NOT_FOUND, f"watcher with id {request.watcher_id} not found")
        return fs.GetWatcherEventsResponse(events=watcher.take())

    async def remove_watcher(self, request, ctx):
        watcher = self.watchers.pop(request.watcher_id, None)
        if watcher is None:
            raise ConnectError(Code.NOT_FOUND, f"watcher with id {request.watcher_id} not found")
        watcher.close()
        return fs.RemoveWatcherResponse()


# ----- process.Process -----


def event(kind, value):
    return pb.ProcessEvent(event=Oneof(kind, value))


def data_event(stream, data):
    return event("data", pb.ProcessEvent.DataEvent(output=Oneof(stream, data)))


class Process:
    """One process envd started: its output goes to every stream attached at the time."""

    def __init__(self, pid, config, tag, child, master):
        self.pid = pid
        self.config = config
        self.tag = tag
        self.child = child
        self.master = master
        self.subscribers = []
        self.end = None

    def publish(self, ev):
        for q in list(self.subscribers):
            q.put_nowait(ev)

    def subscribe(self):
        q = asyncio.Queue()
        self.subscribers.append(q)
        return q

    def unsubscribe(self, q):
        if q in self.subscribers:
            self.subscribers.remove(q)


def keepalive_interval(ctx):
    try:
        return max(1.0, float(ctx.request_headers.get("keepalive-ping-interval", "50")))
    except ValueError:
        return 50.0


async def drain(q, ctx, first):
    """Yields `first`, then what the process publishes, with keepalives while it is quiet,
    until its end event."""
    yield first
    interval = keepalive_interval(ctx)
    while True:
        try:
            ev = await asyncio.wait_for(q.get(), interval)
        except asyncio.TimeoutError:
            yield event("keepalive", pb.ProcessEvent.KeepAlive())
            continue
        yield ev
        if ev.event.field == "end":
            return


class ProcessService:
    def __init__(self, sandbox):
        self.sandbox = sandbox

    def find(self, selector):
        if selector is None or selector.selector is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "no process selector")
        field, value = selector.selector.field, selector.selector.value
        for p in self.sandbox.processes.values():
            if (field == "pid" and p.pid == value) or (field == "tag" and p.tag == value):
                return p
        what = f"pid {value}" if field == "pid" else f"tag {value}"
        raise ConnectError(Code.NOT_FOUND, f"process with {what} not found")

    async def list(self, request, ctx):
        return pb.ListResponse(
            processes=[
                pb.ProcessInfo(config=p.config, pid=p.pid, tag=p.tag)
                for p in self.sandbox.processes.values()
            ]
        )

    async def start(self, request, ctx):
        user = user_of(ctx.request_headers)
        config = request.process
        cwd = resolve(config.cwd, user) if config.cwd else HOMES[user]
        if not os.path.isdir(cwd):
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"invalid cwd '{cwd}': no such file or directory"
            )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": HOMES[user],
            "USER": user,
            "LOGNAME": user,
            "LANG": "C.UTF-8",
        }
        env.update(self.sandbox.envs)
        env.update(dict(config.envs))
        master = None
        if request.pty is not None:
            master, slave = pty.openpty()
            size = request.pty.size
            if size is not None:
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))
            env.setdefault("TERM", "xterm-256color")
            child = await asyncio.create_subprocess_exec(
                config.cmd, *config.args, stdin=slave, stdout=slave, stderr=slave,
                cwd=cwd, env=env, start_new_session=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
            os.close(slave)
        else:
            wants_stdin = request.stdin or not request.has_field("stdin")
            stdin = asyncio.subprocess.PIPE if wants_stdin else asyncio.subprocess.DEVNULL
            child = await asyncio.create_subprocess_exec(
                config.cmd, *config.args, stdin=stdin, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
            )
        tag = request.tag if request.has_field("tag") else None
        proc = Process(child.pid, config, tag, child, master)
        self.sandbox.processes[proc.pid] = proc
        q = proc.subscribe()
        asyncio.ensure_future(self.run(proc))
        try:
            async for ev in drain(q, ctx, event("start", pb.ProcessEvent.StartEvent(pid=proc.pid))):
                yield pb.StartResponse(event=ev)
        finally:
            proc.unsubscribe(q)

    async def run(self, proc):
        """Publishes the process's output, then its end, then forgets it."""
        loop = asyncio.get_running_loop()

        async def pipe(reader, stream):
            while True:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    return
                proc.publish(data_event(stream, chunk))

        async def terminal():
            done = loop.create_future()

            def readable():
                try:
                    chunk = os.read(proc.master, CHUNK)
                except OSError:
                    chunk = b""
                if chunk:
                    proc.publish(data_event("pty", chunk))
                elif not done.done():
                    loop.remove_reader(proc.master)
                    done.set_result(None)

            loop.add_reader(proc.master, readable)
            await done

        if proc.master is not None:
            await asyncio.gather(terminal(), proc.child.wait())
            os.close(proc.master)
        else:
            await asyncio.gather(
                pipe(proc.child.stdout, "stdout"), pipe(proc.child.stderr, "stderr")
            )
        code = await proc.child.wait()
        if code < 0:
            name = signal.Signals(-code).name[3:].lower()
            name = {"kill": "killed", "term": "terminated", "hup": "hangup", "int": "interrupt"}.get(name, name)
            end = pb.ProcessEvent.EndEvent(exit_code=-1, exited=False, status=f"signal: {name}")
        else:
            end = pb.ProcessEvent.EndEvent(exit_code=code, exited=True, status=f"exit status {code}")
        self.sandbox.processes.pop(proc.pid, None)
        proc.end = end
        proc.publish(event("end", end))

    async def connect(self, request, ctx):
        proc = self.find(request.process)
        q = proc.subscribe()
        try:
            async for ev in drain(q, ctx, event("start", pb.ProcessEvent.StartEvent(pid=proc.pid))):
                yield pb.ConnectResponse(event=ev)
        finally:
            proc.unsubscribe(q)

    async def update(self, request, ctx):
        proc = self.find(request.process)
        if proc.master is None:
            raise ConnectError(Code.FAILED_PRECONDITION, "process has no pty")
        if request.pty is not None and request.pty.size is not None:
            size = request.pty.size
            fcntl.ioctl(proc.master, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))
            try:
                os.killpg(proc.pid, signal.SIGWINCH)
            except OSError:
                pass
        return pb.UpdateResponse()

    def write(self, proc, data):
        if data is None or data.input is None:
            return
        field, value = data.input.field, data.input.value
        if field == "pty":
            if proc.master is None:
                raise ConnectError(Code.FAILED_PRECONDITION, "process has no pty")
            os.write(proc.master, value)
        else:
            stdin = proc.child.stdin
            if stdin is None or stdin.is_closing():
                raise ConnectError(Code.FAILED_PRECONDITION, "stdin is not enabled or closed")
            stdin.write(value)

    async def send_input(self, request, ctx):
        proc = self.find(request.process)
        self.write(proc, request.input)
        if proc.child.stdin is not None and proc.master is None:
            try:
                await proc.child.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                raise ConnectError(Code.FAILED_PRECONDITION, "stdin is closed")
        return pb.SendInputResponse()

    async def stream_input(self, request, ctx):
        proc = None
        async for message in request:
            kind = message.event.field if message.event else None
            if kind == "start":
                proc = self.find(message.event.value.process)
            elif kind == "data" and proc is not None:
                self.write(proc, message.event.value.input)
        return pb.StreamInputResponse()

    async def send_signal(self, request, ctx):
        proc = self.find(request.process)
        sig = {pb.Signal.SIGKILL: signal.SIGKILL, pb.Signal.SIGTERM: signal.SIGTERM}.get(request.signal)
        if sig is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "unsupported signal")
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        return pb.SendSignalResponse()

    async def close_stdin(self, request, ctx):
        proc = self.find(request.process)
        if proc.master is not None:
            raise ConnectError(Code.FAILED_PRECONDITION, "cannot close stdin of a pty; send Ctrl+D")
        if proc.child.stdin is not None:
            proc.child.stdin.close()
        return pb.CloseStdinResponse()


# ----- HTTP: /health, /envs, /files -----


async def body_of(receive):
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


# Go's net/http, which envd runs on, reads up to 256 KiB of a body its handler left unread
# before it writes the answer (and closes the connection after a longer one), so a client still
# sending a small upload that is refused gets the answer, not a reset.
GO_DISCARD_LIMIT = 256 << 10


async def refuse(receive, send, status, body):
    """Answers without handling the request, as envd's Go server would: after the body's first
    256 KiB."""
    left = GO_DISCARD_LIMIT
    while left > 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        left -= len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await respond(send, status, body)


async def respond(send, status, body=b"", content_type="application/json", headers=()):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})


def http_user(query):
    user = query.get("username", [DEFAULT_USER])[0] or DEFAULT_USER
    if user not in HOMES:
        return None, user
    return user, user


async def download(send, path):
    if not os.path.exists(path):
        return await respond(send, 404, {"message": f"path '{path}' does not exist", "code": 404})
    if os.path.isdir(path):
        return await respond(send, 400, {"message": f"path '{path}' is a directory", "code": 400})
    try:
        f = open(path, "rb")
    except PermissionError:
        return await respond(send, 401, {"message": f"permission denied: '{path}'", "code": 401})
    with f:
        size = os.fstat(f.fileno()).st_size
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(size).encode()),
                (b"content-disposition", f'attachment; filename="{os.path.basename(path)}"'.encode()),
            ],
        })
        sent = 0
        while sent < size:
            chunk = f.read(min(256 * 1024, size - sent))
            if not chunk:
                break
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": sent < size})
        if sent < size:
            await send({"type": "http.response.body", "body": b""})


def upload_entry(path):
    return {"path": path, "name": os.path.basename(path), "type": "file"}


async def write_stream(receive, path, first=b""):
    """Streams the request body into `path` (parents created), through a temporary file that
    replaces it once complete."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.envd-upload-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(first)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionError("client went away")
                f.write(message.get("body", b""))
                if not message.get("more_body"):
                    break
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def multipart_parts(body, boundary):
    """(filename, data) of each part of a multipart/form-data body."""
    out = []
    for part in body.split(b"--" + boundary):
        if b"\r\n\r\n" not in part:
            continue
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        filename = None
        for line in head.decode(errors="replace").split("\r\n"):
            if line.lower().startswith("content-disposition"):
                for item in line.split(";"):
                    k, _, v = item.strip().partition("=")
                    if k == "filename":
                        filename = v.strip('"')
        if filename is not None:
            out.append((filename, data))
    return out


async def upload(receive, send, headers, query, user):
    ctype = headers.get("content-type", "")
    path = query.get("path", [None])[0]
    try:
        if ctype.startswith("application/octet-stream"):
            if not path:
                return await respond(send, 400, {"message": "path is required for an octet-stream upload", "code": 400})
            full = resolve(path, user)
            if os.path.isdir(full):
                return await respond(send, 400, {"message": f"path '{full}' is a directory", "code": 400})
            await write_stream(receive, full)
            return await respond(send, 200, [upload_entry(full)])
        if ctype.startswith("multipart/form-data"):
            boundary = ctype.split("boundary=", 1)[1].strip('"').encode()
            body = await body_of(receive)
            written = []
            for filename, data in multipart_parts(body, boundary):
                full = resolve(path or filename, user)
                if os.path.isdir(full):
                    return await respond(send, 400, {"message": f"path '{full}' is a directory", "code": 400})
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as f:
                    f.write(data)
                written.append(upload_entry(full))
            return await respond(send, 200, written)
        return await respond(send, 400, {"message": f"unsupported content type {ctype!r}", "code": 400})
    except NotADirectoryError:
        return await respond(send, 400, {"message": f"a parent of '{path}' is not a directory", "code": 400})
    except PermissionError:
        return await respond(send, 401, {"message": f"permission denied: '{path}'", "code": 401})


def signed(query, method, token):
    """Whether a /files request carries a valid signature instead of the access token, as
    envd checks one: `v1_` + unpadded base64 of SHA-256 over `path:operation:username:token`
    (then `:expiration` when given), operation `read` for GET and `write` for POST, and an
    expiration (Unix seconds) not yet past."""

    def first(key):
        return query.get(key, [""])[0]

    signature = first("signature")
    if not signature:
        return False
    operation = {"GET": "read", "POST": "write"}.get(method)
    if operation is None:
        return False
    raw = f"{first('path')}:{operation}:{first('username')}:{token}"
    expiration = first("signature_expiration")
    if expiration:
        if not expiration.isdigit() or int(expiration) < time.time():
            return False
        raw += f":{expiration}"
    digest = base64.b64encode(hashlib.sha256(raw.encode()).digest()).decode().rstrip("=")
    return hmac.compare_digest(signature, "v1_" + digest)


class Envd:
    """The ASGI application: Connect routes to connectrpc, the rest to the HTTP handlers."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.process = process_connect.ProcessASGIApplication(ProcessService(sandbox))
        self.filesystem = filesystem_connect.FilesystemASGIApplication(Filesystem(sandbox))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        if path == "/health":
            return await respond(send, 204)
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
        if (
            self.sandbox.token
            and headers.get("x-access-token") != self.sandbox.token
            and not (path == "/files" and signed(query, scope["method"], self.sandbox.token))
        ):
            return await refuse(receive, send, 401, {"message": "unauthorized access, please provide a valid access token", "code": 401})
        if path.startswith("/process.Process/"):
            return await self.process(scope, receive, send)
        if path.startswith("/filesystem.Filesystem/"):
            return await self.filesystem(scope, receive, send)
        if path == "/envs" and scope["method"] == "GET":
            return await respond(send, 200, self.sandbox.envs)
        if path == "/files":
            user, name = http_user(query)
            if user is None:
                return await refuse(receive, send, 401, {"message": f"error looking up user '{name}': user: unknown user {name}", "code": 401})
            if scope["method"] == "GET":
                target = query.get("path", [None])[0]
                if not target:
                    return await respond(send, 400, {"message": "path is required", "code": 400})
                return await download(send, resolve(target, user))
            if scope["method"] == "POST":
                return await upload(receive, send, headers, query, user)
        return await refuse(receive, send, 404, {"message": "not found", "code": 404})
