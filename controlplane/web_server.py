"""The web process: daphne, with request bodies bounded while they arrive.

    python -m controlplane.web_server -b 0.0.0.0 -p 8000 server.asgi:application

takes daphne's command-line options. Stock daphne spools a request body to a temporary file
and then, before the application runs, puts all of it on the application's input queue
(`WebRequest.process`): a 600 MB POST becomes 600 MB of memory whatever the application
does. Here a request whose Content-Length is over REQUEST_BODY_MAX_BYTES is answered 413
as soon as its headers are in, and a chunked body is counted and refused once it passes the
limit; nothing of it is kept. The rest is daphne unchanged.
"""
from __future__ import annotations

import daphne.server  # noqa: I001 - first: it installs Twisted's asyncio reactor

from typing import Any

from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.internet import reactor

from controlplane.body_limit import too_large_body

# After answering 413, keep reading (and dropping) what the client still sends for this long,
# so it reads our answer instead of a connection reset; then close.
LINGER_SECONDS = 5.0


class BoundedWebRequest(WebRequest):
    refused = False
    body_bytes = 0

    @property
    def body_limit(self) -> int:
        return int(settings.REQUEST_BODY_MAX_BYTES)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.body_limit:
            self.refuse()
            length = 0  # a zero-size buffer: the body is dropped as it arrives
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.body_bytes += len(data)
        if self.body_bytes > self.body_limit:
            self.refuse()
            return
        super().handleContentChunk(data)

    def process(self) -> Any:
        if self.refused:  # the client finished sending: our answer is out, close now
            self.channel.transport.loseConnection()
            return None
        return super().process()

    def refuse(self) -> None:
        if self.refused:
            return
        self.refused = True
        body = too_large_body(self.body_limit)
        head = (
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        )
        transport = self.channel.transport
        transport.write(head + body)
        reactor.callLater(LINGER_SECONDS, transport.loseConnection)


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedWebRequest
        return protocol


class BoundedServer(daphne.server.Server):
    """daphne's Server; `run()` builds its HTTP factory inline, so the attribute it assigns
    is where ours is swapped in."""

    @property
    def http_factory(self) -> HTTPFactory:
        return self._bounded_http_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        self._bounded_http_factory = BoundedHTTPFactory(self)


class BoundedCommandLineInterface(CommandLineInterface):
    server_class = BoundedServer


def main() -> None:
    BoundedCommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
