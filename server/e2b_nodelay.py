"""TCP_NODELAY on every websocket of a Jupyter server: a jupyter_server extension.

Tornado turns Nagle's algorithm back on once it has written a websocket's 101 answer, and
jupyter_server never turns it off again. So after the first small message of a reply (a
kernel's `status: busy`), the server holds the next ones until the peer ACKs the first.
A client talking to the server directly can ACK at once (e2b-blocking sets TCP_QUICKACK),
but behind a reverse proxy (nginx, JupyterHub's configurable-http-proxy, an ingress) the
server's peer is the proxy, which delays its ACK by 40 ms: every small round trip, such as
running `1`, then costs about 40 ms more. No client can change the proxy's ACKs; this
extension turns Nagle off on each websocket as it opens, which removes the wait.

Enable it in a server you start yourself (the file on the server's Python path):

    PYTHONPATH=/path/to/this/dir jupyter server --ServerApp.jpserver_extensions=e2b_nodelay=True

or in `jupyter_server_config.py`:

    import sys; sys.path.insert(0, "/path/to/this/dir")
    c.ServerApp.jpserver_extensions = {"e2b_nodelay": True}

For JupyterHub's single-user servers, in `jupyterhub_config.py`:

    c.Spawner.environment = {"PYTHONPATH": "/path/to/this/dir"}
    c.Spawner.args = ["--ServerApp.jpserver_extensions=e2b_nodelay=True"]

(or copy the file into the single-user image's site-packages). It changes nothing but the
socket option, for kernels, terminals and every other websocket the server has.
"""

import tornado.websocket

_patched = False


def patch():
    """Makes every tornado websocket handler set TCP_NODELAY when its websocket opens."""
    global _patched
    if _patched:
        return
    _patched = True
    init = tornado.websocket.WebSocketHandler.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        # Tornado calls `handler.open(...)` through the instance once the upgrade is written
        # (and Nagle was turned back on), so wrapping it here covers every subclass's own open.
        opened = self.open

        def open(*a, **kw):
            self.set_nodelay(True)
            return opened(*a, **kw)

        self.open = open

    tornado.websocket.WebSocketHandler.__init__ = __init__


def _jupyter_server_extension_points():
    return [{"module": "e2b_nodelay"}]


def _load_jupyter_server_extension(serverapp):
    patch()
    serverapp.log.info("e2b_nodelay: TCP_NODELAY on every websocket")
