"""The moto server of the local AWS cell: moto's DynamoDB and DynamoDB Streams, with two shortcuts
that leave what they answer unchanged.

Profiled under the demo (``meterline demo --aws-endpoint`` against a moto server run with cProfile),
the stand-in spent most of its CPU outside DynamoDB's logic:

- moto's model-driven response serializer walks the output shape for every value: ~3 ms per stream
  record (an item's image), ~1 ms per PutItem answer. DynamoDB's answers are already JSON-shaped
  (attribute values as DynamoDB JSON, blobs as bytes, timestamps as datetimes), so the hot
  operations' results are dumped directly, as the JSON protocol writes them;
- werkzeug's development server closes the connection after every answer, so each call cost a TCP
  connection, a server thread and the client's reconnect (~2 ms on both sides): here connections
  are kept alive (HTTP/1.1);
- the all-services dispatcher infers the service of each request from its headers and host (~1 ms):
  here ``X-Amz-Target`` names it.

Measured by ``meterline demo --events 3000`` (the pipeline table's CPU figures), the moto server's
CPU per event went from 6.7 ms to 3.1 ms and the demo process's from 3.7 ms to 2.9 ms.

Anything else (errors, other operations, results holding objects, the /moto-api/) takes moto's
own path. ``--check`` serializes every shortcut answer both ways and fails the request when they
differ: the tests run a pipeline that way.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import IO, Any, cast
from wsgiref.headers import Headers
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import orjson

DYNAMODB_TARGET = "DynamoDB_20120810."
STREAMS_TARGET = "DynamoDBStreams_20120810."
SHORTCUT = frozenset(
    {
        "GetRecords",
        "PutItem",
        "GetItem",
        "DeleteItem",
        "UpdateItem",
        "Query",
        "Scan",
        "TransactWriteItems",
        "BatchWriteItem",
        "BatchGetItem",
    }
)
"""Operations whose results are plain data: dicts, lists, strings, numbers, datetimes."""


class NotPlainError(TypeError):
    """A result holding something other than plain data: moto's serializer answers it."""


def plain(value: Any) -> Any:
    """``value`` as the JSON protocol writes it: members that are None left out, blobs in base64,
    datetimes as epoch seconds truncated to milliseconds (as moto's serializer does)."""
    if isinstance(value, dict):
        return {key: plain(member) for key, member in value.items() if member is not None}
    if isinstance(value, list | tuple):
        return [plain(member) for member in value]
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes):  # a blob: binary attribute values
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        seconds = calendar.timegm(value.utctimetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    raise NotPlainError(type(value).__name__)


def install_shortcut(check: bool = False) -> None:
    """Answer the hot DynamoDB operations without moto's shape walk (see the module's docstring)."""
    from moto.core.responses import ActionResult, BaseResponse

    moto_serialized = BaseResponse.serialized

    def serialized(self: Any, action_result: ActionResult) -> Any:
        result = action_result.result
        if self.service_name not in {"dynamodb", "dynamodbstreams"} or self._get_action() not in SHORTCUT:
            return moto_serialized(self, action_result)
        if not isinstance(result, dict):
            return moto_serialized(self, action_result)
        try:
            body = orjson.dumps(plain(result)).decode()
        except NotPlainError:
            return moto_serialized(self, action_result)
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers, "status": 200}
        if check:
            status, _, expected = moto_serialized(self, action_result)
            if status != 200 or orjson.loads(expected) != orjson.loads(body):
                raise AssertionError(f"{self._get_action()}: the shortcut answered {body}, moto {expected!r}")
        return 200, headers, body

    BaseResponse.serialized = serialized  # type: ignore[method-assign]


Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def application() -> Wsgi:
    """DynamoDB and its streams by ``X-Amz-Target``; anything else through moto's dispatcher. One
    request at a time: DynamoDB applies each conditional write atomically, moto evaluates a condition
    and writes without a lock (and the GIL runs one request at a time anyway)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dynamodb, streams = create_backend_app("dynamodb"), create_backend_app("dynamodbstreams")
    everything = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(DYNAMODB_TARGET):
            app: Any = dynamodb
        elif target.startswith(STREAMS_TARGET):
            app = streams
        else:
            app = everything
        with one_at_a_time:
            return list(app(environ, start_response))

    return dispatch


class KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 with keep-alive, which werkzeug's development server refuses ("Connection: close" on
    every answer): a client's calls then cost a TCP connection and a server thread each. A request's
    body is read whole before the application runs, so the next request line is where it should be."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # an answer leaves in one write (flushed below), not a segment per header line

    def handle(self) -> None:
        self.close_connection = False
        while not self.close_connection:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline or len(self.raw_requestline) > 65536:
                return
            if not self.parse_request():  # an error was sent; parse_request closes on Connection: close
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = _Answer(io.BytesIO(body), cast(IO[bytes], self.wfile), sys.stderr, self.get_environ())
            answer.request_handler = self  # its log_request, and where to say "close"
            answer.run(self.server.get_app())  # type: ignore[attr-defined]
            self.wfile.flush()

    def handle_expect_100(self) -> bool:
        """S3's PutObject asks ``Expect: 100-continue``: the interim answer leaves now, not with the
        final one (botocore would wait a second for it before sending the body)."""
        answered = super().handle_expect_100()
        self.wfile.flush()
        return answered

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # not a log line per request


class _Answer(ServerHandler):
    http_version = "1.1"
    request_handler: KeepAliveHandler
    headers: Headers

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if "Content-Length" not in self.headers:  # its end is where the connection ends
            self.headers["Connection"] = "close"
            self.request_handler.close_connection = True


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's DynamoDB and DynamoDB Streams, answered faster")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--check", action="store_true", help="compare every shortcut answer with moto's")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    for signum in (signal.SIGINT, signal.SIGTERM):  # as moto's server: either stops it
        signal.signal(signum, lambda *_: sys.exit(0))
    install_shortcut(check=args.check)
    server = ThreadingServer((args.host, args.port), KeepAliveHandler)
    server.set_app(application())
    server.serve_forever()


if __name__ == "__main__":
    main()
