"""A LiveKit server double: signal protocol v1 + WebRTC (aiortc) + Twirp, on one port.

It is small enough to read as a description of how a LiveKit client and server talk:

Signal (WebSocket `GET /rtc/v1?join_request=<base64url WrappedJoinRequest>`, the token in
`Authorization: Bearer`; every message a `SignalRequest` up or a `SignalResponse` down):

    client                                   server
    JoinRequest (+ publisher offer)   ─────▶
                                      ◀─────  JoinResponse (room, participant, others, ping_*)
                                      ◀─────  Answer (+ mid_to_track_id for remote tracks)
    Trickle (candidateInit JSON)      ─────▶
    AddTrackRequest{cid}              ─────▶
                                      ◀─────  TrackPublishedResponse{cid, TrackInfo{sid}}
    Offer (a sendonly m-line)         ─────▶
                                      ◀─────  Answer
                   someone joins later ◀────  ParticipantUpdate + MediaSectionsRequirement
    Offer (one more recvonly m-line)  ─────▶
                                      ◀─────  Answer (that m-line now carries the track)
    PingReq                           ─────▶
                                      ◀─────  PongResp
    LeaveRequest                      ─────▶   (or the server's Leave{ROOM_DELETED})

One peer connection per client (v1 "single PC"): the client always offers, the server
answers. Data: the client's own `_reliable`/`_lossy` channels carry what it sends; the
channels the server opens with the same labels carry what it receives. `DataPacket`s are
user packets or text streams (header/chunk/trailer; topics `lk.chat`, `lk.transcription`).

Twirp (`POST /twirp/livekit.RoomService/…`, `…AgentDispatchService/CreateDispatch`):
protobuf or protobuf-JSON bodies, the bearer token's signature and grants checked.

Simulated callers (a test's participants) live inside the double: they publish a WAV as
their microphone, record every frame the agent publishes, collect the text streams sent to
them and send chat. A test drives them through `/_double/…` JSON endpoints
(`tests/doubles/livekit_client.py`), which also let it delete a room server-side.

Run it alone (in a network namespace: libwebrtc gathers no ICE candidates on loopback):

    python -m tests.doubles.livekit_server --host 10.214.1.2 --port 7880 --api-key k --api-secret s
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aioice.ice
import av
import numpy as np
from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.protocol import models as lkm
from livekit.protocol import rtc as lks

from tests.doubles.livekit_media import CallerVoice, Recorder, opus_packets, read_wav_48k_mono

log = logging.getLogger("livekit-double")
# aioice drops a connection after 6 consent checks in a row (one try each, 0.5 s) go
# unanswered; on busy shared cores with twenty calls that happens to healthy calls. The
# double ends a call when its signal connection ends (leave, vanish, room deleted), so it
# does not need consent expiry: make it practically never fire
aioice.ice.CONSENT_FAILURES = 10_000


def answer_ice_only_from(network: str) -> None:
    """Ignore STUN from outside `network` (the namespace's veth subnet). The worker's host also
    sends checks from its other interfaces; answers to those have no route out of the
    namespace, and a pair nominated that way loses its consent checks half a minute later."""
    allowed = ipaddress.ip_network(network, strict=False)
    request_received = aioice.ice.Connection.request_received

    def guarded(self: Any, message: Any, addr: tuple[str, int], *rest: Any) -> None:
        if ipaddress.ip_address(addr[0]) in allowed:
            request_received(self, message, addr, *rest)

    aioice.ice.Connection.request_received = guarded  # type: ignore[method-assign]
    LiveKitServerDouble.ice_network = allowed
T = TypeVar("T")

PROTOCOL_VERSION = 16
PING_INTERVAL_S = 5  # must be > 0: a zero interval aborts the SDK's native layer
PING_TIMEOUT_S = 15
CHAT_TOPIC = "lk.chat"
TRANSCRIPTION_TOPIC = "lk.transcription"
KINDS = {"standard": lkm.ParticipantInfo.STANDARD, "sip": lkm.ParticipantInfo.SIP,
         "agent": lkm.ParticipantInfo.AGENT, "ingress": lkm.ParticipantInfo.INGRESS,
         "egress": lkm.ParticipantInfo.EGRESS}


def _sid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the room model -----------------------------------------------------------------------------
@dataclass
class TextStream:
    """A text stream as the receiving side assembles it from header, chunks and trailer."""

    stream_id: str
    topic: str
    sender: str
    attributes: dict[str, str]
    started_at: float
    chunks: list[str] = field(default_factory=list)
    ended_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def as_json(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id, "topic": self.topic, "sender": self.sender,
                "attributes": self.attributes, "text": self.text, "started_at": self.started_at,
                "ended_at": self.ended_at}


@dataclass
class Participant:
    sid: str
    identity: str
    name: str
    kind: int
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    joined_at: float = field(default_factory=time.time)
    tracks: dict[str, lkm.TrackInfo] = field(default_factory=dict)
    state: int = lkm.ParticipantInfo.ACTIVE
    signal: SignalConnection | None = None  # a real client
    voice: CallerVoice | None = None  # a simulated caller's microphone
    heard: dict[str, Recorder] = field(default_factory=dict)  # track sid -> what arrived
    text_streams: list[TextStream] = field(default_factory=list)  # received, finished or not
    user_packets: list[dict[str, Any]] = field(default_factory=list)

    def info(self) -> lkm.ParticipantInfo:
        return lkm.ParticipantInfo(
            sid=self.sid, identity=self.identity, name=self.name, kind=self.kind, metadata=self.metadata,
            attributes=self.attributes, state=self.state, joined_at=int(self.joined_at),
            joined_at_ms=int(self.joined_at * 1000), tracks=list(self.tracks.values()),
            is_publisher=bool(self.tracks), version=int(time.time() * 1000) & 0xFFFFFFFF,
            permission=lkm.ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True,
                                                 agent=self.kind == lkm.ParticipantInfo.AGENT))


@dataclass
class Room:
    name: str
    sid: str = field(default_factory=lambda: _sid("RM"))
    empty_timeout: int = 300
    max_participants: int = 0
    metadata: str = ""
    creation_time: int = field(default_factory=lambda: int(time.time()))
    participants: dict[str, Participant] = field(default_factory=dict)

    def info(self) -> lkm.Room:
        return lkm.Room(sid=self.sid, name=self.name, empty_timeout=self.empty_timeout,
                        max_participants=self.max_participants, metadata=self.metadata,
                        creation_time=self.creation_time, creation_time_ms=self.creation_time * 1000,
                        num_participants=len(self.participants),
                        num_publishers=sum(1 for p in self.participants.values() if p.tracks))

    def clients(self, *, besides: Participant | None = None) -> list[SignalConnection]:
        return [p.signal for p in self.participants.values() if p.signal is not None and p is not besides]


# --- one client's signal connection and peer connection ------------------------------------------
class SignalConnection:
    def __init__(self, server: LiveKitServerDouble, room: Room, participant: Participant,
                 ws: web.WebSocketResponse) -> None:
        self.server, self.room, self.participant, self.ws = server, room, participant, ws
        # no ICE servers: aiortc would otherwise ask a public STUN server
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.out_reliable: RTCDataChannel | None = None
        self.out_lossy: RTCDataChannel | None = None
        self.mid_to_track: dict[str, str] = {}  # m-line mid -> remote track sid it carries
        self.pending: list[tuple[Participant, str]] = []  # tracks waiting for a recvonly m-line
        self.pending_publications: dict[str, lkm.TrackInfo] = {}  # cid -> published, media not yet seen
        self.incoming_streams: dict[str, TextStream] = {}
        self._lock = asyncio.Lock()  # one negotiation at a time
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("track", self._on_track)

    async def send(self, **message: Message) -> None:
        if not self.ws.closed:
            await self.ws.send_bytes(lks.SignalResponse(**message).SerializeToString())

    # -- negotiation ---------------------------------------------------------------------------
    async def answer(self, offer: lks.SessionDescription) -> None:
        async with self._lock:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
            if self.out_reliable is None:  # the channels the client reads from are the server's own
                self.out_reliable = self.pc.createDataChannel("_reliable", ordered=True)
                self.out_lossy = self.pc.createDataChannel("_lossy", ordered=False, maxRetransmits=0)
            self._attach_pending()
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.send(answer=lks.SessionDescription(type="answer", sdp=self.pc.localDescription.sdp,
                                                          id=offer.id, mid_to_track_id=self.mid_to_track))
        if self.pending:  # more remote tracks than recvonly m-lines: ask for more
            await self.send(media_sections_requirement=lks.MediaSectionsRequirement(num_audios=len(self.pending)))

    def _attach_pending(self) -> None:
        """Put waiting remote tracks on free m-lines the client offered as recvonly."""
        for transceiver in self.pc.getTransceivers():
            if not self.pending:
                return
            offered_recv = getattr(transceiver, "_offerDirection", None) in ("sendonly", "sendrecv")
            if transceiver.kind != "audio" or not offered_recv or transceiver.sender.track is not None:
                continue
            publisher, track_sid = self.pending.pop(0)
            transceiver.sender.replaceTrack(self.server.media_of(self.room, publisher, track_sid))
            transceiver.sender._stream_id = f"{publisher.sid}|{track_sid}"  # msid: "<participant>|<track> <track>"
            transceiver.direction = "sendonly"
            self.mid_to_track[transceiver.mid] = track_sid

    async def subscribe(self, publisher: Participant, track_sid: str) -> None:
        """Another participant's track for this client: announce it, then have it re-offer."""
        self.pending.append((publisher, track_sid))
        await self.send(update=lks.ParticipantUpdate(participants=[publisher.info()]))
        await self.send(media_sections_requirement=lks.MediaSectionsRequirement(num_audios=len(self.pending)))

    async def unsubscribe(self, publisher: Participant) -> None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is not None and self.mid_to_track.get(transceiver.mid) in publisher.tracks:
                if isinstance(transceiver.sender.track, _RelayedTrack):
                    transceiver.sender.track.stop()
                transceiver.sender.replaceTrack(None)
                self.mid_to_track.pop(transceiver.mid, None)
        self.pending = [(p, s) for p, s in self.pending if p is not publisher]

    async def trickle(self, request: lks.TrickleRequest) -> None:
        init = json.loads(request.candidateInit or "{}")
        line = str(init.get("candidate") or "")
        if not line:
            return
        candidate = candidate_from_sdp(line.removeprefix("candidate:"))
        if self.server.ice_network is not None and not _in_network(candidate.ip, self.server.ice_network):
            return  # unreachable from here: checking it would only send packets nowhere
        candidate.sdpMid, candidate.sdpMLineIndex = init.get("sdpMid"), init.get("sdpMLineIndex")
        try:  # aiortc ignores candidates for bundled m-lines; the first m-line's are enough
            await self.pc.addIceCandidate(candidate)
        except Exception as exc:  # noqa: BLE001 - a candidate it cannot use is not fatal
            log.debug("candidate ignored: %s", exc)

    # -- publishing ----------------------------------------------------------------------------
    async def add_track(self, request: lks.AddTrackRequest) -> None:
        info = lkm.TrackInfo(sid=_sid("TR"), type=request.type, name=request.name, source=request.source,
                             muted=request.muted, mime_type="audio/opus" if request.type == lkm.AUDIO else "",
                             stereo=request.stereo)
        self.participant.tracks[info.sid] = info
        self.pending_publications[request.cid] = info
        await self.send(track_published=lks.TrackPublishedResponse(cid=request.cid, track=info))
        for other in self.room.clients(besides=self.participant):
            await other.send(update=lks.ParticipantUpdate(participants=[self.participant.info()]))

    def _on_track(self, track: Any) -> None:
        """Media the client publishes: every simulated caller in the room records it."""
        if track.kind != "audio":
            return
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                # aiortc holds 4 packets (80 ms) back before decoding audio; on a veth packets come
                # in order, and the tests time the agent's audio, not this buffer
                transceiver.receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=0)
                receiver = transceiver.receiver
                receiver._RTCRtpReceiver__decoder_queue = _InlineDecoder(receiver._RTCRtpReceiver__decoder_queue, track)
        info = next(iter(self.pending_publications.values()), None)
        track_sid = info.sid if info else _sid("TR")
        self.pending_publications.pop(next(iter(self.pending_publications), ""), None)
        self.server.media_published(self.room, self.participant, track_sid, track)

    # -- data ----------------------------------------------------------------------------------
    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(message: bytes | str) -> None:
            if isinstance(message, bytes):
                self._on_data(message, reliable=channel.label == "_reliable")

    def _on_data(self, raw: bytes, *, reliable: bool) -> None:
        try:
            packet = lkm.DataPacket.FromString(raw)
        except DecodeError:
            return
        # the server stamps the sender: what the client sends is not trusted for that
        packet.participant_identity = packet.participant_identity or self.participant.identity
        packet.participant_sid = self.participant.sid
        self.server.deliver(self.room, self.participant, packet, reliable=reliable)

    async def send_data(self, packet: lkm.DataPacket, *, reliable: bool = True) -> None:
        channel = self.out_reliable if reliable else self.out_lossy
        for _ in range(100):  # the channel opens once SCTP is up, shortly after the answer
            if channel is not None and channel.readyState == "open":
                channel.send(packet.SerializeToString())
                return
            await asyncio.sleep(0.05)
        log.warning("data channel to %s never opened; packet dropped", self.participant.identity)

    async def close(self) -> None:
        await self.pc.close()
        if not self.ws.closed:
            await self.ws.close()


# --- the server ---------------------------------------------------------------------------------
class LiveKitServerDouble:
    ice_network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # see answer_ice_only_from

    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret-of-the-double-0123456789") -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.rooms: dict[str, Room] = {}
        self.dispatches: list[api.AgentDispatch] = []
        self.twirp_calls: list[dict[str, Any]] = []
        self.deleted_rooms: list[str] = []
        self.joins: list[dict[str, Any]] = []
        # media the real clients publish, read once and relayed to every listener, simulated
        # callers and the other real clients (an SFU forwards; the double decodes and re-encodes)
        self.published_media: dict[tuple[str, str], dict[str, _Relay]] = {}
        # how late the double's own event loop runs (its media is paced on it): the worst lag
        # of each second, the last minute of them; a test or bench reads it in /_double/state
        self.loop_lag_ms: list[float] = []
        self._encoded: dict[tuple[str, int, float], tuple[np.ndarray, list[bytes]]] = {}  # WAVs as Opus, once
        self.app = web.Application()
        self.app.add_routes([
            web.get("/rtc/v1", self.signal),
            web.get("/rtc/validate", self.validate),
            web.get("/rtc/v1/validate", self.validate),
            web.post("/twirp/livekit.{service}/{method}", self.twirp),
            *control_routes(self),
        ])

    def encoded_wav(self, path: str) -> tuple[np.ndarray, list[bytes]]:
        """A WAV's samples and Opus packets, encoded once per file (twenty callers often say the same)."""
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime)
        if key not in self._encoded:
            samples = read_wav_48k_mono(path)
            self._encoded[key] = (samples, opus_packets(samples))
        return self._encoded[key]

    def verify(self, token: str) -> api.TokenVerifier:
        return api.TokenVerifier(self.api_key, self.api_secret).verify(token)

    def room(self, name: str) -> Room:
        if name not in self.rooms:  # like LiveKit: a room is created on first join
            self.rooms[name] = Room(name=name)
        return self.rooms[name]

    # -- signal --------------------------------------------------------------------------------
    async def validate(self, request: web.Request) -> web.Response:
        try:
            self._join_claims(request)
        except web.HTTPException as exc:
            return web.Response(status=exc.status, text=exc.text or "")
        return web.Response(text="success")

    def _join_claims(self, request: web.Request) -> Any:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else request.query.get("access_token", "")
        if not token:
            raise web.HTTPUnauthorized(text="no access token")
        try:
            claims = self.verify(token)
        except Exception as exc:  # noqa: BLE001 - any bad token is a 401, as on the server
            raise web.HTTPUnauthorized(text=f"invalid token: {exc}") from None
        if not claims.video.room_join or not claims.video.room or not claims.identity:
            raise web.HTTPUnauthorized(text="token lacks the roomJoin grant, a room or an identity")
        return claims

    async def signal(self, request: web.Request) -> web.StreamResponse:
        claims = self._join_claims(request)
        join = _decode_join_request(request.query.get("join_request", ""))
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        room = self.room(claims.video.room)
        previous = room.participants.get(claims.identity)
        if previous is not None and previous.signal is not None:  # the same identity again: the old one goes
            await previous.signal.send(leave=lks.LeaveRequest(reason=lkm.DUPLICATE_IDENTITY,
                                                              action=lks.LeaveRequest.DISCONNECT))
            await self._remove(room, previous)
        participant = Participant(sid=_sid("PA"), identity=claims.identity, name=claims.name or claims.identity,
                                  kind=KINDS.get(claims.kind or "standard", lkm.ParticipantInfo.STANDARD),
                                  metadata=claims.metadata or "", attributes=dict(claims.attributes or {}))
        conn = participant.signal = SignalConnection(self, room, participant, ws)
        self.joins.append({"room": room.name, "identity": participant.identity, "reconnect": join.reconnect,
                           "at": time.time()})
        others = [p for p in room.participants.values()]
        room.participants[participant.identity] = participant
        await conn.send(join=lks.JoinResponse(
            room=room.info(), participant=participant.info(), other_participants=[p.info() for p in others],
            server_version="1.9.0", server_info=lkm.ServerInfo(edition=lkm.ServerInfo.Standard, version="1.9.0",
                                                               protocol=PROTOCOL_VERSION, node_id="ND_double"),
            subscriber_primary=False, ping_interval=PING_INTERVAL_S, ping_timeout=PING_TIMEOUT_S))
        conn.pending.extend((p, sid) for p in others if p.voice is not None for sid in p.tracks)
        conn.pending.extend((p, sid) for p in others if p.signal is not None
                            for sid in self.published_media.get((room.name, p.identity), {}))
        for other in room.clients(besides=participant):
            await other.send(update=lks.ParticipantUpdate(participants=[participant.info()]))
        try:
            if join.HasField("publisher_offer"):
                await conn.answer(join.publisher_offer)
            async for message in ws:
                if message.type != WSMsgType.BINARY:
                    continue
                await self._on_request(conn, lks.SignalRequest.FromString(message.data))
        finally:
            if room.participants.get(participant.identity) is participant:
                await self._remove(room, participant)
        return ws

    async def _on_request(self, conn: SignalConnection, request: lks.SignalRequest) -> None:
        kind = request.WhichOneof("message")
        if kind == "offer":
            await conn.answer(request.offer)
        elif kind == "trickle":
            await conn.trickle(request.trickle)
        elif kind == "add_track":
            await conn.add_track(request.add_track)
        elif kind == "ping_req":
            await conn.send(pong_resp=lks.Pong(last_ping_timestamp=request.ping_req.timestamp, timestamp=_now_ms()))
        elif kind == "ping":
            await conn.send(pong=_now_ms())
        elif kind == "leave":
            await self._remove(conn.room, conn.participant)
        # subscription, track settings, mute, metadata updates: accepted and ignored

    async def _remove(self, room: Room, participant: Participant) -> None:
        if room.participants.get(participant.identity) is not participant:
            return
        del room.participants[participant.identity]
        participant.state = lkm.ParticipantInfo.DISCONNECTED
        for recorder in participant.heard.values():
            recorder.stop()
        if participant.voice is not None:
            participant.voice.stop()
        for other in room.clients():
            await other.unsubscribe(participant)
            await other.send(update=lks.ParticipantUpdate(participants=[participant.info()]))
        if participant.signal is not None:
            self.published_media.pop((room.name, participant.identity), None)
            await participant.signal.close()

    def media_published(self, room: Room, publisher: Participant, track_sid: str, track: Any) -> None:
        relay = _Relay(track)
        self.published_media.setdefault((room.name, publisher.identity), {})[track_sid] = relay
        for p in room.participants.values():
            if p.signal is None and p is not publisher:
                p.heard[track_sid] = Recorder(track_sid=track_sid)
                p.heard[track_sid].start(relay.listen())
        for conn in room.clients(besides=publisher):  # real clients subscribe to it (auto-subscribe)
            asyncio.get_running_loop().create_task(conn.subscribe(publisher, track_sid))

    def media_of(self, room: Room, publisher: Participant, track_sid: str) -> Any:
        """What a client's m-line sends for `publisher`'s track: a simulated caller's voice, or a
        real client's media relayed (listened to from now on, so no backlog builds up)."""
        if publisher.voice is not None:
            return _LentVoice(publisher.voice)
        return self.published_media[(room.name, publisher.identity)][track_sid].listen(track_sid)

    # -- data ----------------------------------------------------------------------------------
    def deliver(self, room: Room, sender: Participant, packet: lkm.DataPacket, *, reliable: bool) -> None:
        """Route a client's packet to its destinations (everyone else when none is named)."""
        targets = [p for p in room.participants.values() if p is not sender
                   and (not packet.destination_identities or p.identity in packet.destination_identities)]
        for target in targets:
            if target.signal is not None:
                asyncio.get_running_loop().create_task(target.signal.send_data(packet, reliable=reliable))
            else:
                _receive_packet(target, packet)

    async def caller_sends_text(self, room: Room, caller: Participant, text: str, *, topic: str = CHAT_TOPIC) -> None:
        """A text stream from a simulated caller, as the SDK's `send_text` would send it."""
        stream_id = _sid("ST")
        data = text.encode()
        header = lkm.DataStream.Header(stream_id=stream_id, timestamp=_now_ms(), topic=topic, mime_type="text/plain",
                                       total_length=len(data),
                                       text_header=lkm.DataStream.TextHeader(operation_type=lkm.DataStream.CREATE))
        packets = [lkm.DataPacket(stream_header=header),
                   lkm.DataPacket(stream_chunk=lkm.DataStream.Chunk(stream_id=stream_id, chunk_index=0, content=data)),
                   lkm.DataPacket(stream_trailer=lkm.DataStream.Trailer(stream_id=stream_id))]
        for packet in packets:
            packet.kind = lkm.DataPacket.RELIABLE
            packet.participant_identity, packet.participant_sid = caller.identity, caller.sid
            for conn in room.clients():
                await conn.send_data(packet)

    # -- simulated callers ---------------------------------------------------------------------
    async def add_caller(self, room_name: str, identity: str, *, name: str = "", kind: str = "standard",
                         publish_audio: bool = True, metadata: str = "") -> Participant:
        room = self.room(room_name)
        if identity in room.participants:
            raise web.HTTPConflict(text=f"{identity} is already in {room_name}")
        caller = Participant(sid=_sid("PA"), identity=identity, name=name or identity, kind=KINDS[kind],
                             metadata=metadata)
        if publish_audio:
            track = lkm.TrackInfo(sid=_sid("TR"), type=lkm.AUDIO, name="microphone", source=lkm.TrackSource.MICROPHONE,
                                  mime_type="audio/opus")
            caller.tracks[track.sid] = track
            caller.voice = CallerVoice(track.sid)
        room.participants[identity] = caller
        for conn in room.clients():
            if caller.voice is not None:
                await conn.subscribe(caller, next(iter(caller.tracks)))
            else:
                await conn.send(update=lks.ParticipantUpdate(participants=[caller.info()]))
        for p in room.participants.values():  # tracks already published reach the newcomer too
            if p.signal is not None:
                for track_sid, relay in self.published_media.get((room.name, p.identity), {}).items():
                    caller.heard[track_sid] = Recorder(track_sid=track_sid)
                    caller.heard[track_sid].start(relay.listen())
        return caller

    async def delete_room(self, name: str) -> None:
        """What RoomService.DeleteRoom does: everyone is told to leave (ROOM_DELETED), no retry."""
        room = self.rooms.pop(name, None)
        if room is None:
            raise TwirpError(404, "not_found", "room not found")
        self.deleted_rooms.append(name)
        everyone = list(room.participants.values())
        for conn in room.clients():  # first everyone is told, then the room is torn down
            await conn.send(leave=lks.LeaveRequest(can_reconnect=False, reason=lkm.ROOM_DELETED,
                                                   action=lks.LeaveRequest.DISCONNECT))
        room.participants.clear()
        for p in everyone:
            p.state = lkm.ParticipantInfo.DISCONNECTED
            for recorder in p.heard.values():
                recorder.stop()
            if p.voice is not None:
                p.voice.stop()
            if p.signal is not None:
                await p.signal.close()

    # -- twirp ---------------------------------------------------------------------------------
    async def twirp(self, request: web.Request) -> web.Response:
        service, method = request.match_info["service"], request.match_info["method"]
        content_type = request.content_type
        try:
            if (service, method) not in TWIRP_ROUTES:
                raise TwirpError(404, "bad_route", f"unknown route {request.path}")
            request_cls, grant = TWIRP_ROUTES[(service, method)]
            identity = self._twirp_authorize(request, grant)
            raw = await request.read()
            if content_type == "application/protobuf":
                body = request_cls.FromString(raw)
            elif content_type == "application/json":
                body = json_format.Parse(raw or b"{}", request_cls())
            else:
                raise TwirpError(415, "bad_route", f"unsupported content type {content_type!r}")
            self.twirp_calls.append({"service": service, "method": method, "content_type": content_type,
                                     "body": json_format.MessageToDict(body), "identity": identity, "at": time.time()})
            response = await self._twirp_handle(service, method, body)
        except TwirpError as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)
        except (DecodeError, json_format.ParseError) as exc:
            return web.json_response({"code": "malformed", "msg": str(exc)}, status=400)
        if content_type == "application/json":
            return web.Response(body=json_format.MessageToJson(response).encode(), content_type="application/json")
        return web.Response(body=response.SerializeToString(), content_type="application/protobuf")

    def _twirp_authorize(self, request: web.Request, grant: str) -> str:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise TwirpError(401, "unauthenticated", "no bearer token")
        try:
            claims = self.verify(header.removeprefix("Bearer "))
        except Exception as exc:  # noqa: BLE001
            raise TwirpError(401, "unauthenticated", f"invalid token: {exc}") from None
        if not getattr(claims.video, grant, False):
            raise TwirpError(403, "permission_denied", f"token lacks the {grant} grant")
        return str(claims.identity)

    async def _twirp_handle(self, service: str, method: str, body: Any) -> Message:
        if (service, method) == ("RoomService", "CreateRoom"):
            room = self.rooms.get(body.name)
            if room is None:  # CreateRoom is idempotent: an existing room is returned as is
                room = self.rooms[body.name] = Room(name=body.name, empty_timeout=body.empty_timeout,
                                                    max_participants=body.max_participants, metadata=body.metadata)
            return room.info()
        if (service, method) == ("RoomService", "ListRooms"):
            return api.ListRoomsResponse(rooms=[r.info() for n, r in self.rooms.items() if not body.names or n in body.names])
        if (service, method) == ("RoomService", "DeleteRoom"):
            await self.delete_room(body.room)
            return api.DeleteRoomResponse()
        if (service, method) == ("RoomService", "ListParticipants"):
            room = self.rooms.get(body.room)
            if room is None:
                raise TwirpError(404, "not_found", "room not found")
            return api.ListParticipantsResponse(participants=[p.info() for p in room.participants.values()])
        dispatch = api.AgentDispatch(id=_sid("AD"), agent_name=body.agent_name, room=body.room, metadata=body.metadata)
        self.dispatches.append(dispatch)
        return dispatch


# request type and the grant the real server requires for it
TWIRP_ROUTES: dict[tuple[str, str], tuple[type[Message], str]] = {
    ("RoomService", "CreateRoom"): (api.CreateRoomRequest, "room_create"),
    ("RoomService", "ListRooms"): (api.ListRoomsRequest, "room_list"),
    ("RoomService", "DeleteRoom"): (api.DeleteRoomRequest, "room_create"),
    ("RoomService", "ListParticipants"): (api.ListParticipantsRequest, "room_admin"),
    ("AgentDispatchService", "CreateDispatch"): (api.CreateAgentDispatchRequest, "room_admin"),
}


class TwirpError(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _in_network(address: str, network: Any) -> bool:
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:  # an mDNS name: not ours
        return False


def _decode_join_request(param: str) -> lks.JoinRequest:
    if not param:
        raise web.HTTPBadRequest(text="join_request is required on /rtc/v1")
    try:
        wrapped = lks.WrappedJoinRequest.FromString(base64.urlsafe_b64decode(param + "=" * (-len(param) % 4)))
        raw = gzip.decompress(wrapped.join_request) if wrapped.compression == lks.WrappedJoinRequest.GZIP \
            else wrapped.join_request
        return lks.JoinRequest.FromString(raw)
    except (ValueError, DecodeError, OSError) as exc:
        raise web.HTTPBadRequest(text=f"bad join_request: {exc}") from None


def _receive_packet(target: Participant, packet: lkm.DataPacket) -> None:
    """A simulated caller receives a packet: assemble text streams, keep user packets."""
    kind = packet.WhichOneof("value")
    if kind == "stream_header" and packet.stream_header.HasField("text_header"):
        h = packet.stream_header
        stream = TextStream(stream_id=h.stream_id, topic=h.topic, sender=packet.participant_identity,
                            attributes=dict(h.attributes), started_at=time.time())
        target.text_streams.append(stream)
        if h.inline_content:
            stream.chunks.append(h.inline_content.decode(errors="replace"))
    elif kind in ("stream_chunk", "stream_trailer"):
        sid = getattr(packet, kind).stream_id
        stream = next((s for s in reversed(target.text_streams) if s.stream_id == sid), None)
        if stream is None:
            return
        if kind == "stream_chunk":
            stream.chunks.append(packet.stream_chunk.content.decode(errors="replace"))
        else:
            stream.attributes.update(packet.stream_trailer.attributes)
            stream.ended_at = time.time()
    elif kind == "user":
        target.user_packets.append({"topic": packet.user.topic, "sender": packet.participant_identity,
                                    "payload": packet.user.payload.decode(errors="replace"), "at": time.time()})


class _InlineDecoder:
    """Stands in for an aiortc receiver's decoder queue: decodes each Opus frame where it is
    put, on the event loop, and hands the PCM straight to the remote track. aiortc decodes in
    a thread per receiver and sends every frame back with `run_coroutine_threadsafe`; with
    twenty agents talking at once those threads and hand-offs fought the loop for the GIL,
    and the agents' audio queued up in the double for seconds. An Opus frame decodes in
    tens of microseconds: inline is cheaper."""

    def __init__(self, thread_queue: Any, track: Any) -> None:
        self.thread_queue = thread_queue  # aiortc's decoder thread still waits on it: it ends it
        self.track_queue = track._queue
        self.decoder: Any = None

    def put(self, task: Any) -> None:
        if task is None:  # the receiver stops: end aiortc's (idle) decoder thread, which ends the track
            self.thread_queue.put(None)
            return
        codec, encoded_frame = task
        if self.decoder is None:
            self.decoder = get_decoder(codec)
        try:
            frames = self.decoder.decode(encoded_frame)
        except av.FFmpegError as exc:
            log.warning("undecodable %s frame: %s", codec.name, exc)
            return
        for frame in frames:
            self.track_queue.put_nowait(frame)


class _Relay:
    """One remote track read once and handed to several listeners (an aiortc track has one reader)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.queues: list[asyncio.Queue[Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._pump())

    def listen(self, track_sid: str = "") -> _RelayedTrack:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.append(queue)
        return _RelayedTrack(queue, self, track_sid)

    async def _pump(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                for q in self.queues:
                    q.put_nowait(frame)
        except MediaStreamError:  # the track ended
            for q in self.queues:
                q.put_nowait(None)


class _RelayedTrack:
    kind = "audio"

    def __init__(self, queue: asyncio.Queue[Any], relay: _Relay, track_sid: str = "") -> None:
        self.queue, self.relay = queue, relay
        self.id = track_sid  # sent as the msid's track id: the SDK reads the track sid from it

    async def recv(self) -> Any:
        frame = await self.queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        """Stop listening: frames no longer queue up for a subscriber that went."""
        if self.queue in self.relay.queues:
            self.relay.queues.remove(self.queue)


class _LentVoice:
    """A simulated caller's voice as one connection's m-line sends it. aiortc stops a sender's
    track when its peer connection closes; the voice must outlive a client's connection (the
    SDK's reconnect opens a new one), so that stop ends only this loan, not the voice."""

    kind = "audio"

    def __init__(self, voice: CallerVoice) -> None:
        self.voice, self.id = voice, voice.id

    async def recv(self) -> Any:
        return await self.voice.recv()

    def stop(self) -> None:
        pass  # the voice ends when its caller leaves (`_remove`), not with a connection


# --- the control API for tests ---------------------------------------------------------------------
def control_routes(server: LiveKitServerDouble) -> list[web.RouteDef]:
    def handler(fn: Callable[[web.Request], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return web.json_response(await fn(request))
            except TwirpError as exc:
                return web.json_response({"error": exc.msg}, status=exc.status)

        return wrapped

    def room_of(request: web.Request) -> Room:
        room = server.rooms.get(request.match_info["room"])
        if room is None:
            raise web.HTTPNotFound(text="no such room")
        return room

    def caller_of(request: web.Request) -> tuple[Room, Participant]:
        room = room_of(request)
        caller = room.participants.get(request.match_info["identity"])
        if caller is None or caller.signal is not None:
            raise web.HTTPNotFound(text="no such simulated participant")
        return room, caller

    async def state(request: web.Request) -> Any:
        return {"rooms": {name: {"sid": r.sid, "participants": [
            {"identity": p.identity, "sid": p.sid, "kind": lkm.ParticipantInfo.Kind.Name(p.kind).lower(),
             "simulated": p.signal is None, "tracks": list(p.tracks)} for p in r.participants.values()]}
            for name, r in server.rooms.items()},
            "deleted_rooms": server.deleted_rooms, "twirp_calls": server.twirp_calls, "joins": server.joins,
            "loop_lag_ms": server.loop_lag_ms,
            "dispatches": [json_format.MessageToDict(d) for d in server.dispatches]}

    async def add(request: web.Request) -> Any:
        body = await request.json()
        caller = await server.add_caller(request.match_info["room"], str(body["identity"]), name=body.get("name", ""),
                                         kind=body.get("kind", "standard"), publish_audio=body.get("publish_audio", True),
                                         metadata=body.get("metadata", ""))
        return {"sid": caller.sid, "tracks": list(caller.tracks)}

    async def speak(request: web.Request) -> Any:
        _, caller = caller_of(request)
        body = await request.json()
        if caller.voice is None:
            raise web.HTTPConflict(text="this participant publishes no audio")
        samples, packets = server.encoded_wav(str(body["wav"]))
        caller.voice.speak(samples, packets)
        return {"duration_s": len(samples) / 48000}

    async def heard(request: web.Request) -> Any:
        _, caller = caller_of(request)
        with_audio = request.query.get("audio") == "1"
        # `loud_above=<rms>`: only the arrival times of the frames louder than that (what a
        # poll needs; twenty callers' full frame lists each poll cost the double's loop dearly)
        loud_above = float(request.query["loud_above"]) if "loud_above" in request.query else None
        out: dict[str, Any] = {"tracks": {}, "text_streams": [s.as_json() for s in caller.text_streams],
                               "user_packets": caller.user_packets,
                               "spoken": [{"started_at": u.started_at, "ended_at": u.ended_at,
                                           "duration_s": len(u.samples) / 48000}
                                          for u in (caller.voice.spoken if caller.voice else [])]}
        for sid, rec in caller.heard.items():
            frames = list(rec.frames)
            entry: dict[str, Any] = {"frames": len(frames), "sample_rate": 48000,
                                     "last_time": frames[-1][0] if frames else None}
            if loud_above is None:
                entry.update(times=[t for t, _ in frames], rms=rec.levels[:len(frames)])
            else:
                entry["loud_times"] = [t for (t, _), level in zip(frames, rec.levels) if level > loud_above]
            if with_audio:
                pcm = np.concatenate([f for _, f in frames]) if frames else np.zeros(0, np.int16)
                entry["pcm16_base64"] = base64.b64encode(pcm.tobytes()).decode()
            out["tracks"][sid] = entry
        return out

    async def chat(request: web.Request) -> Any:
        room, caller = caller_of(request)
        body = await request.json()
        await server.caller_sends_text(room, caller, str(body["text"]), topic=body.get("topic", CHAT_TOPIC))
        return {"sent": True}

    async def leave(request: web.Request) -> Any:
        room, caller = caller_of(request)
        await server._remove(room, caller)
        return {"left": True}

    async def delete(request: web.Request) -> Any:
        await server.delete_room(request.match_info["room"])
        return {"deleted": True}

    async def drop_signal(request: web.Request) -> Any:
        """Close one real client's WebSocket (not a leave): the SDK tries to reconnect."""
        room = room_of(request)
        p = room.participants.get(request.match_info["identity"])
        if p is None or p.signal is None:
            raise web.HTTPNotFound(text="no such client")
        await p.signal.ws.close()
        return {"dropped": True}

    return [
        web.get("/_double/state", handler(state)),
        web.post("/_double/rooms/{room}/participants", handler(add)),
        web.post("/_double/rooms/{room}/participants/{identity}/speak", handler(speak)),
        web.get("/_double/rooms/{room}/participants/{identity}", handler(heard)),
        web.post("/_double/rooms/{room}/participants/{identity}/chat", handler(chat)),
        web.delete("/_double/rooms/{room}/participants/{identity}", handler(leave)),
        web.post("/_double/rooms/{room}/delete", handler(delete)),
        web.post("/_double/rooms/{room}/clients/{identity}/drop", handler(drop_signal)),
    ]


# --- running it ---------------------------------------------------------------------------------
async def _watch_loop(double: LiveKitServerDouble) -> None:
    while True:
        worst, t_end = 0.0, time.monotonic() + 1.0
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - t0 - 0.01)
        double.loop_lag_ms = [*double.loop_lag_ms[-59:], round(worst * 1000, 1)]


async def serve(host: str, port: int, *, api_key: str, api_secret: str) -> web.AppRunner:
    double = LiveKitServerDouble(api_key=api_key, api_secret=api_secret)
    double.watcher = asyncio.get_running_loop().create_task(_watch_loop(double))
    runner = web.AppRunner(double.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=7880)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run() -> None:
        answer_ice_only_from(f"{args.host}/24")
        await serve(args.host, args.port, api_key=args.api_key, api_secret=args.api_secret)
        print(f"livekit double listening on {args.host}:{args.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()


class LiveKitDoubleThread:
    """The double on its own event loop in a thread of this process (loopback is enough
    for Twirp and signalling; media needs the namespace, see `livekit_netns.py`).

        with LiveKitDoubleThread(api_key="k", api_secret="s") as lk:
            ... LIVEKIT_URL=lk.url ...; lk.double.rooms
    """

    def __init__(self, *, api_key: str = "devkey", api_secret: str = "secret-of-the-double-0123456789",
                 host: str = "127.0.0.1") -> None:
        self.api_key, self.api_secret, self.host = api_key, api_secret, host
        self.double = LiveKitServerDouble(api_key=api_key, api_secret=api_secret)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="livekit-double", daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> LiveKitDoubleThread:
        self._thread.start()
        self._runner = self.run(self._start())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(20)  # type: ignore[arg-type]

    async def _start(self) -> web.AppRunner:
        runner = web.AppRunner(self.double.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [c for c in self.double.twirp_calls if c["method"] == method]
