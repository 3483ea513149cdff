# File operations for e2b-blocking's `sandbox.files()` that the contents API of a server with
# default settings refuses or gets wrong: deletes (it moves them to the trash, freeing no
# disk), hidden paths (`allow_hidden=False` refuses them) and the root's own absolute path.
# Runs in a private kernel whose cwd is the server's root_dir; paths are relative to it. The
# result is base64 of a JSON object, read back through `user_expressions`, so that no output
# message is involved and nothing depends on IOPub.
def __e2b_fs(op):
    import base64
    import datetime
    import json
    import os
    import shutil

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

    # The path a batch operation was at when it failed, for the error.
    where = {}

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
                with open(f["path"], "wb") as fh:
                    fh.write(base64.b64decode(f["data"]))
                written.append(info(f["path"]))
            return {"entries": written}
        if kind == "read":
            if os.path.isdir(path):
                raise IsADirectoryError(path)
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
            os.rename(path, dest)
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
    except FileExistsError:
        out = {"error": "exists"}
    except Exception as e:
        out = {"error": "other", "message": type(e).__name__ + ": " + str(e)}
    if "error" in out and "path" in where:
        out["path"] = where["path"]
    return base64.b64encode(json.dumps(out).encode("utf-8")).decode("ascii")
