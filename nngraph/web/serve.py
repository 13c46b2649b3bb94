"""Run the app with uvicorn on 127.0.0.1: a random free port unless one is given, a fresh token
in the printed URL. The socket is bound here, before uvicorn starts, so the URL printed is the
one that answers. `in_background` serves the same app from a thread (tests, benchmarks)."""

from __future__ import annotations

import secrets
import socket
import threading
import time
import webbrowser
from contextlib import contextmanager
from dataclasses import dataclass


def serve(open_session, port: int = 0, open_browser: bool = False, echo=print) -> None:
    token = secrets.token_urlsafe(24)
    listener = listen(port)
    url = f"{_base(listener)}/?token={token}"
    echo(f"nngraph serve: {url}  (read-only; the token keeps other users out; Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(url)
    _server(open_session, token).run(sockets=[listener])


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT
    listener: socket.socket


@contextmanager
def in_background(open_session, token: str):
    """The app served from a daemon thread on a free port until the block ends."""
    listener = listen(0)
    server = _server(open_session, token)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    try:
        yield Served(_base(listener), listener)
    finally:
        server.should_exit = True
        thread.join(10)


def listen(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:port (0: a free one), or one line saying why not."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        from nngraph.errors import NNGraphError

        raise NNGraphError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): choose another --port, "
                           "or leave it out for a free one") from None
    return listener


def _base(listener: socket.socket) -> str:
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def _server(open_session, token: str):
    import uvicorn

    from .app import create_app

    return uvicorn.Server(uvicorn.Config(create_app(open_session, token), log_level="warning"))
