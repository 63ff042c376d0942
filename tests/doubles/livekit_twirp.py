"""A LiveKit server double for the Twirp API, on loopback, for `livekit-api` clients.

Answers `/twirp/livekit.RoomService/{CreateRoom,ListRooms,DeleteRoom}` and
`/twirp/livekit.AgentDispatchService/CreateDispatch` with protobuf bodies
(`application/protobuf`, what livekit-api sends) or protobuf-JSON (`application/json`),
checks the bearer token's signature and grants like the server does, keeps rooms and
dispatches in memory, and records every request.

    with LiveKitTwirpDouble(api_key="devkey", api_secret="secret") as lk:
        ... LIVEKIT_URL=lk.url ...
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit import api


@dataclass
class TwirpRequest:
    service: str
    method: str
    content_type: str
    body: Message
    identity: str


class LiveKitTwirpDouble:
    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret-of-the-double-0123456789") -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.rooms: dict[str, api.Room] = {}
        self.dispatches: list[api.AgentDispatch] = []
        self.requests: list[TwirpRequest] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LiveKitTwirpDouble:
        double = self

        class Handler(_Handler):
            owner = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="livekit-double", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LiveKitTwirpDouble:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The ws:// URL clients are configured with (livekit-api maps it to http)."""
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.server_address[1]}"

    def calls(self, method: str) -> list[TwirpRequest]:
        with self.lock:
            return [r for r in self.requests if r.method == method]

    # -- the server's behaviour ----------------------------------------------------------
    def handle(self, service: str, method: str, body: Message) -> Message:
        with self.lock:
            if (service, method) == ("RoomService", "CreateRoom"):
                assert isinstance(body, api.CreateRoomRequest)
                room = self.rooms.get(body.name)
                if room is None:  # CreateRoom is idempotent: an existing room is returned as is
                    room = api.Room(sid=f"RM_{secrets.token_hex(6)}", name=body.name, empty_timeout=body.empty_timeout,
                                    max_participants=body.max_participants, metadata=body.metadata,
                                    creation_time=int(time.time()))
                    self.rooms[body.name] = room
                return room
            if (service, method) == ("RoomService", "ListRooms"):
                assert isinstance(body, api.ListRoomsRequest)
                rooms = [r for n, r in self.rooms.items() if not body.names or n in body.names]
                return api.ListRoomsResponse(rooms=rooms)
            if (service, method) == ("RoomService", "DeleteRoom"):
                assert isinstance(body, api.DeleteRoomRequest)
                if body.room not in self.rooms:
                    raise TwirpError(404, "not_found", "room not found")
                del self.rooms[body.room]
                return api.DeleteRoomResponse()
            if (service, method) == ("AgentDispatchService", "CreateDispatch"):
                assert isinstance(body, api.CreateAgentDispatchRequest)
                dispatch = api.AgentDispatch(id=f"AD_{secrets.token_hex(6)}", agent_name=body.agent_name, room=body.room,
                                             metadata=body.metadata)
                self.dispatches.append(dispatch)
                return dispatch
        raise TwirpError(404, "bad_route", f"no handler for {service}/{method}")


# request type and the grant the real server requires for it
ROUTES: dict[tuple[str, str], tuple[type[Message], str]] = {
    ("RoomService", "CreateRoom"): (api.CreateRoomRequest, "room_create"),
    ("RoomService", "ListRooms"): (api.ListRoomsRequest, "room_list"),
    ("RoomService", "DeleteRoom"): (api.DeleteRoomRequest, "room_create"),
    ("AgentDispatchService", "CreateDispatch"): (api.CreateAgentDispatchRequest, "room_admin"),
}


class TwirpError(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class _Handler(BaseHTTPRequestHandler):
    owner: LiveKitTwirpDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            prefix, _, rest = self.path.partition("/twirp/livekit.")
            service, _, method = rest.partition("/")
            if prefix or (service, method) not in ROUTES:
                raise TwirpError(404, "bad_route", f"unknown route {self.path}")
            request_cls, grant = ROUTES[(service, method)]
            identity = self._authorize(grant)
            if content_type == "application/protobuf":
                body = request_cls.FromString(raw)
            elif content_type == "application/json":
                body = json_format.Parse(raw or b"{}", request_cls())
            else:
                raise TwirpError(415, "bad_route", f"unsupported content type {content_type!r}")
            with self.owner.lock:
                self.owner.requests.append(TwirpRequest(service, method, content_type, body, identity))
            response = self.owner.handle(service, method, body)
        except TwirpError as exc:
            self._send(exc.status, "application/json", json.dumps({"code": exc.code, "msg": exc.msg}).encode())
            return
        except (DecodeError, json_format.ParseError) as exc:
            self._send(400, "application/json", json.dumps({"code": "malformed", "msg": str(exc)}).encode())
            return
        if content_type == "application/json":
            self._send(200, "application/json", json_format.MessageToJson(response).encode())
        else:
            self._send(200, "application/protobuf", response.SerializeToString())

    def _authorize(self, grant: str) -> str:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            raise TwirpError(401, "unauthenticated", "no bearer token")
        try:
            claims = api.TokenVerifier(self.owner.api_key, self.owner.api_secret).verify(header.removeprefix("Bearer "))
        except Exception as exc:  # noqa: BLE001 - any bad token is 401, as on the server
            raise TwirpError(401, "unauthenticated", f"invalid token: {exc}") from None
        if not getattr(claims.video, grant, False):
            raise TwirpError(403, "permission_denied", f"token lacks the {grant} grant")
        return claims.identity

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
