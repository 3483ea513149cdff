"""A stand-in for E2B's code-interpreter server (port 49999), in front of a real jupyter_server
that listens only on a 0600 Unix socket, as template 0.4.7 runs it.

Routes and wire format as E2B's server has them (facts from e2b-dev/code-interpreter
template/server: main.py, messaging.py, api/models/*.py): `GET /health`; `POST /execute`
`{code, context_id, language, env_vars}` answering JSON lines (`stdout`/`stderr` with the
Jupyter header's timestamp, `result` with every format field and `is_main_result`, the first
`error`, `number_of_executions`, a `keepalive` line every 5 s while waiting, then
`end_of_execution`); a dropped client gets its cell interrupted; `POST/GET /contexts`,
`POST /contexts/{id}/restart`, `DELETE /contexts/{id}`; default python context made at start,
other languages made on first use; the sandbox's env vars fetched from envd's `/envs` on a
context's first execution; `X-Access-Token` checked on `/execute` when the sandbox has one.
The kernels offered are those installed: python, and bash when bash_kernel is.
"""

import asyncio
import datetime
import json
import uuid

import httpx
from websockets.asyncio.client import unix_connect

KEEPALIVE_INTERVAL = 5
DEFAULT_CWD = "/home/user"
KERNELS = {"python": "python3", "bash": "bash"}
FORMATS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}


def normalize_language(language):
    language = (language or "python").lower().strip()
    return {"js": "javascript", "ts": "typescript"}.get(language, language)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def result_line(bundle, is_main):
    out = {"type": "result"}
    data = dict(bundle)
    for mime, field in FORMATS.items():
        out[field] = data.pop(mime, None)
    text = out["text"]
    if text and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        out["text"] = text[1:-1]
    out["extra"] = data
    out["is_main_result"] = is_main
    return out


def set_env_code(language, envs, save=False):
    if not envs:
        return None
    if language == "python":
        saved = f"__e2b_saved_envs = {{k: __os.environ.get(k) for k in {json.dumps(list(envs))}}}\n" if save else ""
        return f"import os as __os\n{saved}__os.environ.update({json.dumps(envs)})\ndel __os"
    if language == "bash":
        return "\n".join(f"export {k}={json.dumps(v)}" for k, v in envs.items())
    return None


def unset_env_code(language, envs):
    if not envs:
        return None
    if language == "python":
        return (
            "import os as __os\n"
            "for __k, __v in __e2b_saved_envs.items():\n"
            "    if __v is None: __os.environ.pop(__k, None)\n"
            "    else: __os.environ[__k] = __v\n"
            "del __os, __e2b_saved_envs"
        )
    if language == "bash":
        return "\n".join(f"unset {k}" for k in envs)
    return None


def cd_code(language, cwd):
    if language == "python":
        return f"%cd {json.dumps(cwd)}"
    if language == "bash":
        return f"cd {json.dumps(cwd)}"
    return None


class Context:
    """One kernel and the websocket to it."""

    def __init__(self, server, kernel_id, session_id, language, cwd):
        self.server = server
        self.id = kernel_id
        self.session_id = session_id
        self.language = language
        self.cwd = cwd
        self.lock = asyncio.Lock()
        self.routes = {}
        self.ws = None
        self.reader = None
        self.envs_loaded = False

    def describe(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    async def connect(self):
        uri = f"ws://localhost/api/kernels/{self.id}/channels?session_id={self.session_id}"
        self.ws = await unix_connect(self.server.socket, uri, max_size=None)
        self.reader = asyncio.ensure_future(self.read())

    async def close(self):
        if self.reader:
            self.reader.cancel()
        if self.ws:
            await self.ws.close()
        for q in self.routes.values():
            q.put_nowait(None)

    async def read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                parent = msg.get("parent_header", {}).get("msg_id")
                q = self.routes.get(parent)
                if q is not None:
                    q.put_nowait(msg)
        except Exception:
            pass
        for q in self.routes.values():
            q.put_nowait(None)

    def request(self, code, silent):
        msg_id = uuid.uuid4().hex
        return msg_id, {
            "header": {
                "msg_id": msg_id,
                "username": "e2b",
                "session": self.session_id,
                "msg_type": "execute_request",
                "version": "5.3",
                "date": now(),
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": silent,
                "store_history": not silent,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }

    async def run(self, code, silent):
        """Sends a cell; yields each message of it until it is idle after its input."""
        msg_id, message = self.request(code, silent)
        q = asyncio.Queue()
        self.routes[msg_id] = q
        try:
            await self.ws.send(json.dumps(message))
            accepted = silent
            replied = idle = False
            while not (replied and idle):
                msg = await q.get()
                if msg is None:
                    raise ConnectionError("the connection to the kernel was lost")
                kind = msg["msg_type"]
                if kind == "execute_input":
                    accepted = True
                if kind == "execute_reply":
                    replied = True
                if kind == "status" and msg["content"]["execution_state"] == "idle" and accepted:
                    idle = True
                yield msg
        finally:
            self.routes.pop(msg_id, None)

    async def silent(self, code):
        if code:
            async for _ in self.run(code, True):
                pass

    async def execute(self, code, env_vars, token):
        """The output lines of one execution, as E2B's server writes them."""
        async with self.lock:
            if not self.envs_loaded:
                self.envs_loaded = True
                await self.silent(set_env_code(self.language, await self.server.global_envs(token)))
            await self.silent(set_env_code(self.language, env_vars, save=True))
            try:
                async for line in self.outputs(code):
                    yield line
            finally:
                await self.silent(unset_env_code(self.language, env_vars))

    async def outputs(self, code):
        """The output lines of one cell, with a keepalive line while it is quiet."""
        msg_id, message = self.request(code, False)
        q = asyncio.Queue()
        self.routes[msg_id] = q
        try:
            await self.ws.send(json.dumps(message))
            accepted = replied = idle = errored = False
            while not (replied and idle):
                try:
                    msg = await asyncio.wait_for(q.get(), KEEPALIVE_INTERVAL)
                except asyncio.TimeoutError:
                    yield {"type": "keepalive"}
                    continue
                if msg is None:
                    yield {"type": "error", "name": "WebSocketError",
                           "value": "The connections was lost, rerun the code to get the results",
                           "traceback": ""}
                    yield {"type": "unexpected_end_of_execution"}
                    return
                kind, content = msg["msg_type"], msg["content"]
                if kind == "execute_input":
                    accepted = True
                    yield {"type": "number_of_executions", "execution_count": content["execution_count"]}
                elif kind == "execute_reply":
                    replied = True
                    if content.get("status") == "aborted":
                        # A cell queued behind one that failed (stop_on_error), as after an
                        # interrupt: the kernel never ran it.
                        yield {"type": "error", "name": "ExecutionAborted",
                               "value": "Execution was aborted", "traceback": ""}
                        return
                elif kind == "status":
                    idle = idle or (content["execution_state"] == "idle" and accepted)
                elif kind == "stream":
                    yield {"type": content["name"], "text": content["text"],
                           "timestamp": msg["header"].get("date")}
                elif kind in ("display_data", "execute_result"):
                    yield result_line(content["data"], kind == "execute_result")
                elif kind == "error" and not errored:
                    errored = True
                    yield {"type": "error", "name": content["ename"], "value": content["evalue"],
                           "traceback": "\n".join(content["traceback"])}
        finally:
            self.routes.pop(msg_id, None)


class Interpreter:
    """The ASGI application."""

    def __init__(self, socket, envd_url, token):
        self.socket = socket
        self.envd_url = envd_url
        self.token = token
        self.client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket), base_url="http://localhost", timeout=60
        )
        self.contexts = {}
        self.defaults = {}
        self.default_locks = {}

    async def start(self):
        context = await self.create_context("python", DEFAULT_CWD)
        self.defaults["python"] = context.id

    async def global_envs(self, token):
        headers = {"X-Access-Token": token} if token else {}
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.get(f"{self.envd_url}/envs", headers=headers)
            return r.json() if r.status_code == 200 else {}

    async def create_context(self, language, cwd):
        kernel = KERNELS.get(language)
        if kernel is None:
            raise ValueError(f"No kernel for language '{language}' is installed in this sandbox")
        r = await self.client.post(
            "/api/sessions",
            json={"path": uuid.uuid4().hex, "kernel": {"name": kernel}, "type": "notebook", "name": uuid.uuid4().hex},
        )
        if r.status_code >= 300:
            raise ValueError(f"Failed to create a {language} context: {r.status_code} {r.text}")
        session = r.json()
        context = Context(self, session["kernel"]["id"], session["id"], language, cwd)
        await context.connect()
        await context.silent(cd_code(language, cwd))
        self.contexts[context.id] = context
        return context

    async def default_context(self, language):
        lock = self.default_locks.setdefault(language, asyncio.Lock())
        async with lock:
            if language not in self.defaults:
                self.defaults[language] = (await self.create_context(language, DEFAULT_CWD)).id
            return self.contexts[self.defaults[language]]

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        parts = [p for p in path.split("/") if p]
        if path == "/health":
            return await respond(send, 200, "OK")
        if path == "/execute" and method == "POST":
            return await self.execute(scope, receive, send, headers)
        if parts[:1] == ["contexts"]:
            if self.token and headers.get("x-access-token") not in (None, self.token):
                return await text(send, 401, "Invalid access token")
            return await self.contexts_route(method, parts[1:], receive, send)
        return await text(send, 404, "Not Found")

    async def contexts_route(self, method, rest, receive, send):
        if not rest and method == "GET":
            return await respond(send, 200, [c.describe() for c in self.contexts.values()])
        if not rest and method == "POST":
            body = json.loads(await read_body(receive) or b"{}")
            language = normalize_language(body.get("language"))
            try:
                context = await self.create_context(language, body.get("cwd") or DEFAULT_CWD)
            except Exception as e:
                return await text(send, 500, str(e))
            return await respond(send, 200, context.describe())
        context = self.contexts.get(rest[0]) if rest else None
        if context is None:
            return await text(send, 404, f"Context {rest[0] if rest else ''} not found")
        if rest[1:] == ["restart"] and method == "POST":
            await context.close()
            r = await self.client.post(f"/api/kernels/{context.id}/restart")
            if r.status_code >= 300:
                return await text(send, 500, f"Failed to restart context {context.id}")
            fresh = Context(self, context.id, context.session_id, context.language, context.cwd)
            await fresh.connect()
            await fresh.silent(cd_code(fresh.language, fresh.cwd))
            self.contexts[context.id] = fresh
            return await respond(send, 200, None)
        if not rest[1:] and method == "DELETE":
            await context.close()
            await self.client.delete(f"/api/kernels/{context.id}")
            del self.contexts[context.id]
            for language, cid in list(self.defaults.items()):
                if cid == context.id:
                    del self.defaults[language]
            return await respond(send, 200, None)
        return await text(send, 404, "Not Found")

    async def execute(self, scope, receive, send, headers):
        token = headers.get("x-access-token")
        if self.token and token != self.token:
            return await text(send, 401, "Invalid access token")
        request = json.loads(await read_body(receive) or b"{}")
        if request.get("context_id") and request.get("language"):
            return await text(send, 400, "Only one of context_id or language can be provided")
        if request.get("context_id"):
            context = self.contexts.get(request["context_id"])
            if context is None:
                return await text(send, 404, f"Context {request['context_id']} not found")
        else:
            try:
                context = await self.default_context(normalize_language(request.get("language")))
            except Exception as e:
                return await text(send, 500, str(e))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        gone = asyncio.ensure_future(disconnected(receive))
        lines = context.execute(request.get("code", ""), request.get("env_vars") or {}, token)
        try:
            async for line in lines:
                if gone.done():
                    raise ConnectionError("client went away")
                await send({"type": "http.response.body", "body": (json.dumps(line) + "\n").encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b'{"type": "end_of_execution"}\n'})
        except (ConnectionError, OSError):
            # The client went away mid-execution: interrupt the cell so the context is free.
            await self.client.post(f"/api/kernels/{context.id}/interrupt")
        finally:
            gone.cancel()
            await lines.aclose()


async def disconnected(receive):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def read_body(receive):
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send, status, value):
    body = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def text(send, status, message):
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
