"""The explorer's local web server: Starlette (the routes) on uvicorn (the HTTP server), in a background thread.

Why these: Starlette is a small, well-kept ASGI toolkit (one dependency, anyio) whose routing, JSON responses and
static files are all the explorer needs, and it runs plain ``def`` handlers in a thread pool, so a model run does
not block the page's other requests. uvicorn (h11 and click) serves it and can be started on a socket we bound
ourselves and stopped from another thread (``Server.should_exit``), which lets ``lstmkit.explore`` return while
the server runs (in a notebook too) and lets a port that is in use fail with one clear line instead of a log.
The standard library's ``http.server`` would have needed our own routing, JSON error handling and threading.

Routes: ``/`` the page, ``/static/*`` its script and style (package data, no build step, nothing from a CDN),
``/api/meta``, ``/api/sequence``, ``/api/match``, ``/api/intervene``. A request the subject cannot serve (a
sequence out of range, a threshold no unit passes) answers 400 with ``{"error": message}``, which the page shows.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from importlib import resources

from ..errors import InputError
from . import data, intervene
from .match import match
from .subject import Subject

HOST = "127.0.0.1"


class PortInUse(OSError):
    """The port asked for is taken; the message says which and how to choose another."""


def build_app(subjects: list[Subject]):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    static = resources.files("lstmkit.explorer").joinpath("static")

    def page(request: Request) -> Response:
        return HTMLResponse(static.joinpath("index.html").read_text())

    def guarded(handler):
        def run(request: Request) -> Response:
            try:
                return JSONResponse(handler(request))
            except (ValueError, TypeError) as err:  # InputError/InputTypeError and the checks' messages
                return JSONResponse({"error": str(err)}, status_code=400)
            except KeyError as err:
                return JSONResponse({"error": f"the request lacks the field {err}"}, status_code=400)
            except Exception as err:  # our bug, not the user's: still a message the page can show
                return JSONResponse({"error": f"internal error: {type(err).__name__}: {err}"}, status_code=500)
        return run

    def pick(params) -> Subject:
        k = int(params.get("subject", 0))
        if not 0 <= k < len(subjects):
            raise InputError(f"`subject` must be in [0, {len(subjects) - 1}], got {k}")
        return subjects[k]

    def meta(request: Request) -> dict:
        return data.meta(subjects, mode="server")

    def sequence(request: Request) -> dict:
        q = request.query_params
        return data.sequence(pick(q), int(q.get("seq", 0)), int(q.get("layer", 0)), int(q.get("direction", 0)))

    async def read_json(request: Request) -> dict:
        body = await request.json()
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        return body

    async def match_route(request: Request) -> Response:
        try:
            body = await read_json(request)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return await _in_thread(guarded(lambda _: _match(pick(body), body)), request)

    async def intervene_route(request: Request) -> Response:
        try:
            body = await read_json(request)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return await _in_thread(guarded(lambda _: intervene.run(pick(body), body)), request)

    routes = [Route("/", page), Route("/api/meta", guarded(meta)), Route("/api/sequence", guarded(sequence)),
              Route("/api/match", match_route, methods=["POST"]),
              Route("/api/intervene", intervene_route, methods=["POST"]),
              Mount("/static", StaticFiles(directory=str(static)), name="static")]
    return Starlette(routes=routes)


async def _in_thread(fn, request):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, request)


def _match(subject: Subject, body: dict) -> dict:
    layer, direction = int(body.get("layer", 0)), int(body.get("direction", 0))
    subject.check_layer_direction(layer, direction)
    name = subject.check_record(body.get("record"))
    values = subject.record(subject.full_trace(), layer, direction, name)  # (N, T, S)
    return match(values, subject.check_sequence(int(body["seq"])), int(body["start"]), int(body["stop"]),
                 float(body["threshold"]), top=int(body.get("top", 20)))


def bind(port: int | None, host: str = HOST) -> socket.socket:
    """A listening socket on ``host``:``port`` (a free port when None), or PortInUse naming the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port or 0))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {host} is in use; choose another with --port (or "
                                              "port=) or leave it out for a free one") from None
        raise
    sock.listen(64)
    return sock


class Explorer:
    """A running explorer: ``url``; ``stop()`` ends the server. Returned by :func:`lstmkit.explore.explore`."""

    def __init__(self, subjects: list[Subject], *, port: int | None = None, host: str = HOST):
        import uvicorn

        self.subjects = subjects
        self._socket = bind(port, host)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}/"
        config = uvicorn.Config(build_app(subjects), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="lstmkit-explore", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"the explorer's server did not start on {self.url}")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the command line)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __repr__(self) -> str:
        return f"Explorer({self.url})"

    def _repr_html_(self) -> str:
        return f'<a href="{self.url}" target="_blank">lstmkit explorer at {self.url}</a>'
