"""The REST API's HTTP server: aiohttp's, with the limits a server facing any client needs.

`serving.rest.RestApi` turns a request (method, path, body) into an answer;
this module carries requests to it over HTTP/1.1. The framing is aiohttp's
(a maintained server: chunked bodies, Content-Length validated, pipelined
requests answered in order, a request carrying both Content-Length and
Transfer-Encoding refused, so nothing hidden in a body is read as a request).
What this module adds, each a flag of `serving.server` with TF Serving's
default where it has one:

* a body limit (``--rest_api_max_body_bytes``), checked against
  Content-Length before a byte is read and while a chunked body arrives:
  413, and the connection closed;
* header limits (``--rest_api_max_header_bytes`` per line, 100 headers):
  414 for a long request line, 431 for a long or a 101st header;
* an idle timeout (``--rest_api_idle_timeout_seconds``): a connection with
  no request in progress, or whose request headers have not all arrived, is
  closed when it runs out, so a slow client holds nothing for long;
* a request timeout (``--rest_api_timeout_in_ms``, TF Serving's, 30 s):
  the body must arrive within it (408) and the answer be ready within it
  (504);
* a connection cap (``--rest_api_max_connections``): beyond it a
  connection's requests are answered 503 and it is closed;
* ``--rest_api_num_threads`` (TF Serving's default: 4 per CPU) answer
  requests at once; the event loop only reads and writes.

Every answer, refusals of the framing included, is TF Serving's
``{"error": "..."}`` JSON, and every one is counted in the server's metrics
by its code (`RestApi.refused`). The ``Server`` header names no software
version.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import socket
import threading

from aiohttp import http_exceptions, web, web_protocol

from serving.rest import RestApi

LOG = logging.getLogger("serving.rest")
SERVER_HEADER = "featnet-serving"
JSON = "application/json"
MAX_HEADERS = 100
OVER_CAPACITY_IDLE_SECONDS = 1.0
LINGER_SECONDS = (
    1.0  # after refusing a body, how long the rest of it is read (and dropped) so the client reads the answer
)


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """What one client may cost the REST server (the flags of the module docstring)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_header_bytes: int = 8190
    idle_timeout_seconds: float = 30.0
    timeout_seconds: float = 30.0
    max_connections: int = 256
    num_threads: int = 4 * (os.cpu_count() or 1)


class BodyTooLarge(Exception):
    pass


def response(status: int, body: bytes, content_type: str = JSON, close: bool = False) -> web.Response:
    answer = web.Response(status=status, body=body, content_type=None)
    answer.headers["Content-Type"] = content_type
    answer.headers["Server"] = SERVER_HEADER
    if close:
        answer.force_close()
    return answer


def refusal(api: RestApi, path: str, status: int, message: str, close: bool = False) -> web.Response:
    """TF Serving's error answer to a request refused before any API ran, counted (`RestApi.refused`)."""
    return response(status, api.refused(path, status, message), close=close)


def framing_status(error: BaseException | None) -> tuple[int, str]:
    """The status and message of a request aiohttp's parser refused: 414 for a request line
    beyond the limit, 431 for a header beyond it or too many headers, 400 otherwise."""
    message = getattr(error, "message", None) or str(error or "a malformed HTTP request")
    if isinstance(error, http_exceptions.LineTooLong):
        line, limit = error.args[0], error.args[1]
        line = bytes(line) if isinstance(line, bytearray) else line
        if isinstance(line, bytes) and line.startswith((b"/", b"http")):  # the target of the request line
            return 414, f"the request's URL is longer than {limit} bytes"
        return 431, f"a header of the request is longer than {limit} bytes: {line[:40]!r}"
    if "Too many headers" in message:
        return 431, f"the request has more than {MAX_HEADERS} headers"
    return 400, f"malformed HTTP request: {message[:200]}"


class ConnectionHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering its own refusals as JSON and counting them."""

    def __init__(self, manager: CappedServer, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self.over_capacity = False
        self.rest_server = manager

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        if status == 500:
            LOG.error("error answering a REST request", exc_info=exc)
            text = f"internal error: {type(exc).__name__}: {exc}" if exc else "internal error"
        elif status == 504:
            text = "the answer was not ready within the request timeout"
        else:
            status, text = framing_status(exc)
        path = request.raw_path if status in (500, 504) else ""  # else the request line was not read
        return refusal(self.rest_server.api, path, status, text, close=True)


class CappedServer(web.Server):
    """aiohttp's low-level server with a cap on the connections it holds."""

    def __init__(self, handler, api: RestApi, limits: HttpLimits, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.api, self.limits = api, limits

    def __call__(self) -> ConnectionHandler:
        return ConnectionHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler, transport) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) > self.limits.max_connections:
            handler.over_capacity = True
            handler._keepalive_timeout = OVER_CAPACITY_IDLE_SECONDS


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, refused as soon as it is known to exceed `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(request.content_length)
    chunks, size = [], 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size)
        chunks.append(chunk)


class RestServer:
    """The REST API served on a thread of its own (an asyncio loop); `shutdown` stops it."""

    def __init__(self, api: RestApi, host: str, port: int, limits: HttpLimits = HttpLimits()) -> None:
        self.api, self.limits = api, limits
        self.executor = concurrent.futures.ThreadPoolExecutor(limits.num_threads, thread_name_prefix="rest")
        self.loop = asyncio.new_event_loop()
        self.port = 0
        started = concurrent.futures.Future()
        self.thread = threading.Thread(target=self._run, args=(host, port, started), name="rest-api", daemon=True)
        self.thread.start()
        self.port = started.result()  # raises the bind's OSError here

    def _run(self, host: str, port: int, started: concurrent.futures.Future) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(self._start(host, port))
        except Exception as error:  # an address in use or not ours: the caller says so
            started.set_exception(error)
            return
        started.set_result(self.server.sockets[0].getsockname()[1])
        self.loop.run_forever()

    async def _start(self, host: str, port: int) -> asyncio.AbstractServer:
        self.http = CappedServer(
            self._handle,
            self.api,
            self.limits,
            keepalive_timeout=self.limits.idle_timeout_seconds,
            max_line_size=self.limits.max_header_bytes,
            max_field_size=self.limits.max_header_bytes,
            max_headers=MAX_HEADERS,
            lingering_time=LINGER_SECONDS,
            access_log=None,
        )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return await self.loop.create_server(self.http, host, port, family=family, reuse_address=True)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        if request.protocol.over_capacity:
            message = f"the server holds its maximum of {self.limits.max_connections} connections: retry later"
            return refusal(self.api, path, 503, message, close=True)
        reading = True  # a timeout while the body arrives is the client's (408), after it the server's (504)
        try:
            async with asyncio.timeout(self.limits.timeout_seconds):
                body = await read_body(request, self.limits.max_body_bytes)
                reading = False
                status, content_type, payload = await self.loop.run_in_executor(
                    self.executor, self.api.handle, request.method, path, body
                )
        except BodyTooLarge as error:
            message = (
                f"the request body has {error.args[0]} bytes or more, beyond the limit of {self.limits.max_body_bytes}"
            )
            return refusal(self.api, path, 413, message, close=True)
        except TimeoutError:
            if reading:
                message = f"the request body did not arrive within {self.limits.timeout_seconds:g} s"
                return refusal(self.api, path, 408, message, close=True)
            message = f"the answer was not ready within {self.limits.timeout_seconds:g} s"
            return refusal(self.api, path, 504, message)
        except http_exceptions.HttpProcessingError as error:  # a malformed chunked body, a body cut short
            status, message = framing_status(error)
            return refusal(self.api, path, status, message, close=True)
        return response(status, payload, content_type)

    @property
    def connections(self) -> int:
        return len(self.http.connections)

    def shutdown(self) -> None:
        """Stops accepting, closes every connection, stops the loop and its thread."""

        async def stop() -> None:
            self.server.close()
            await self.http.shutdown(1.0)
            await self.server.wait_closed()

        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self.executor.shutdown(wait=False, cancel_futures=True)


def serve(api: RestApi, host: str, port: int, limits: HttpLimits = HttpLimits()) -> tuple[RestServer, int]:
    """Starts the REST API on a thread; returns the server (call `shutdown`) and the port it bound."""
    server = RestServer(api, host, port, limits)
    return server, server.port
