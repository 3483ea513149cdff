# File operations for e2b-blocking's `sandbox.files()` that the contents API of a server with
# default settings refuses or gets wrong: deletes (it moves them to the trash, freeing no
# disk), hidden paths (`allow_hidden=False` refuses them), paths outside its root_dir and
# links that lead there, and the root's own absolute path. Runs in a private kernel whose cwd
# is the server's root_dir; paths are relative to it or absolute, as code sees them. The
# result is base64 of a JSON object, read back through `user_expressions`, so that no output
# message is involved and nothing depends on IOPub.
def __e2b_fs(op):
    import base64
    import datetime
    import json
    import os
    import shutil
    import stat

    def info(rel):
        st = os.stat(rel or ".")
        is_dir = os.path.isdir(rel or ".")
        modified = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
        return {
            "name": rel.rsplit("/", 1)[-1],
            "path": rel,
            "type": "directory" if is_dir else "file",
            "size": None if is_dir else st.st_size,
            "last_modified": modified.isoformat(),
        }

    def registry_dir():
        # As `_registry_dir` in commands/runner.py: one directory per server root.
        import hashlib
        import tempfile

        root = hashlib.sha256(os.getcwd().encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), "e2b-blocking-commands-" + root)

    def live_records():
        d = registry_dir()
        records = {}
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(d, name)) as f:
                    rec = json.load(f)
                with open("/proc/%d/stat" % rec["pid"]) as f:
                    stat = f.read().rsplit(")", 1)[1].split()
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                continue
            # A zombie has ended; another start time means the pid was reused.
            if stat[0] == "Z" or (rec.get("start_time") is not None and str(rec["start_time"]) != stat[19]):
                continue
            records[rec["pid"]] = rec
        return records

    def commands(kind):
        import signal

        records = live_records()
        if kind == "commands":
            keys = ("pid", "cmd", "cwd", "started_at")
            return {"commands": [{k: r.get(k) for k in keys} for r in records.values()]}
        pid = int(op["pid"])
        try:
            if op.get("group") or pid in records:
                # The runner starts each command in a session of its own: kill all of it.
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return {"killed": False}
        return {"killed": True}

    # The path a batch operation was at when it failed, for the error.
    where = {}

    class NotAFile(Exception):
        pass

    def regular(path):
        # Refuses what is there and not a regular file: opening a FIFO blocks until its other
        # end is opened, and a device may never end.
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise NotAFile(path)

    def run():
        kind = op["op"]
        path = op.get("path") or "."
        if kind == "root":
            return {"root": os.getcwd()}
        if kind == "stat":
            return info(op.get("path") or "")
        if kind == "list":
            if not os.path.isdir(path):
                raise NotADirectoryError(path)
            rel = op.get("path") or ""
            return {"entries": [info(os.path.join(rel, n)) for n in sorted(os.listdir(path))]}
        if kind == "remove":
            # Checked first: on a read-only file system unlink says EROFS even of a missing name.
            if not os.path.lexists(path):
                raise FileNotFoundError(path)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            return {}
        if kind == "mkdir":
            os.makedirs(path, exist_ok=True)
            return info(op["path"])
        if kind == "write":
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            data = base64.b64decode(op["data"])
            regular(path)
            with open(path, "ab" if op.get("append") else "wb") as f:
                f.write(data)
            return info(op["path"])
        if kind == "write_many":
            written = []
            for f in op["files"]:
                where["path"] = f["path"]
                parent = os.path.dirname(f["path"])
                if parent:
                    os.makedirs(parent, exist_ok=True)
                regular(f["path"])
                with open(f["path"], "wb") as fh:
                    fh.write(base64.b64decode(f["data"]))
                written.append(info(f["path"]))
            return {"entries": written}
        if kind in ("commands", "kill"):
            return commands(kind)
        if kind == "read":
            if os.path.isdir(path):
                raise IsADirectoryError(path)
            regular(path)
            with open(path, "rb") as f:
                f.seek(op.get("offset", 0))
                data = f.read(op["limit"])
            return {"data": base64.b64encode(data).decode("ascii"), "size": os.path.getsize(path)}
        if kind == "rename":
            dest = op["to"]
            if os.path.lexists(dest):
                raise FileExistsError(dest)
            parent = os.path.dirname(dest)
            if parent:
                os.makedirs(parent, exist_ok=True)
            # Across file systems too (the root to /tmp), as `mv` does.
            shutil.move(path, dest)
            return info(dest)
        raise ValueError("unknown operation " + kind)

    try:
        out = {"ok": run()}
    except FileNotFoundError:
        out = {"error": "not_found"}
    except NotADirectoryError:
        out = {"error": "not_a_directory"}
    except IsADirectoryError:
        out = {"error": "is_a_directory"}
    except PermissionError:
        out = {"error": "permission_denied"}
    except FileExistsError as e:
        out = {"error": "exists", "path": e.filename if e.filename is not None else str(e)}
    except NotAFile:
        out = {"error": "not_a_file"}
    except Exception as e:
        out = {"error": "other", "message": type(e).__name__ + ": " + str(e)}
    if "error" in out and "path" in where:
        out.setdefault("path", where["path"])
    return base64.b64encode(json.dumps(out).encode("utf-8")).decode("ascii")


def _install():
    import sys
    import types

    mod = types.ModuleType("__e2b_fs")
    mod.run = __e2b_fs
    sys.modules["__e2b_fs"] = mod


_install()
