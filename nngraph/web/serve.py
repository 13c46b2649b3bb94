"""Run the app with uvicorn on 127.0.0.1: a random free port unless one is given, a fresh token
in the printed URL. The socket is bound here, before uvicorn starts, so the URL printed is the
one that answers."""

from __future__ import annotations

import secrets
import socket
import webbrowser


def serve(open_session, port: int = 0, open_browser: bool = False, echo=print) -> None:
    import uvicorn

    from .app import create_app

    token = secrets.token_urlsafe(24)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        from nngraph.errors import NNGraphError

        raise NNGraphError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): choose another --port, "
                           "or leave it out for a free one") from None
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/?token={token}"
    echo(f"nngraph serve: {url}  (read-only; the token keeps other users out; Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(create_app(open_session, token), log_level="warning"))
    server.run(sockets=[listener])
