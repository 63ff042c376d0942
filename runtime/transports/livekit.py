"""LiveKit transport: the agent joins a room as `agent-<job id>` with a short-lived,
least-privilege token, subscribes to the participant's audio (and video for vision),
publishes its voice as a microphone track, reads text on `lk.chat`, and publishes
transcriptions on `lk.transcription`.

Room events map to session hooks in `RoomEventMapper`: participants (complete
`participant_joined`/`participant_left`, with their tracks), the linked caller leaving (the
session ends after a configurable grace), the SDK's reconnects (`reconnecting` /
`reconnected` events; a room that stays unreachable ends the session `livekit_unreachable`)
and a server-side room deletion (`room_deleted`). Joining and publishing are bounded by
timeouts that fail with a clear error.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from livekit import api, rtc

from ..events import Error, ParticipantInfo, Reconnected, Reconnecting
from ..imaging import downscale, encode_png

log = logging.getLogger(__name__)

CHAT_TOPIC = "lk.chat"
TRANSCRIPTION_TOPIC = "lk.transcription"
DEFAULT_TOKEN_TTL = datetime.timedelta(minutes=10)

_KINDS = {0: "standard", 1: "ingress", 2: "egress", 3: "sip", 4: "agent", 5: "connector", 6: "bridge"}
_TRACK_KINDS = {0: "unknown", 1: "audio", 2: "video"}
_SOURCES = {0: "unknown", 1: "camera", 2: "microphone", 3: "screen_share", 4: "screen_share_audio"}
_PERMISSIONS = ("can_subscribe", "can_publish", "can_publish_data", "hidden", "can_update_metadata")
_CLIENT_INITIATED = 1
# a participant's joined event waits this long for its tracks (the SDK announces them just after)
JOIN_TRACKS_WAIT_S = 0.5


class TransportAuthError(ConnectionError):
    """The LiveKit server refused the agent's join token (a credentials problem, not a worker one)."""


class TransportTimeout(TimeoutError):
    pass


def agent_identity(job_id: str) -> str:
    return f"agent-{job_id}"


def mint_agent_token(*, api_key: str, api_secret: str, room: str, job_id: str,
                     ttl: datetime.timedelta = DEFAULT_TOKEN_TTL, name: str = "",
                     metadata: str = "") -> str:
    """A token that lets the agent join `room` only: publish its microphone and data,
    subscribe; no room admin, create, list or record rights."""
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                             can_publish_data=True, can_publish_sources=["microphone"],
                             can_update_own_metadata=False, agent=True)
    token = (api.AccessToken(api_key, api_secret).with_identity(agent_identity(job_id))
             .with_kind("agent").with_name(name or agent_identity(job_id)).with_ttl(ttl).with_grants(grants))
    if metadata:
        token = token.with_metadata(metadata)
    return token.to_jwt()


# -- mapping (pure) ------------------------------------------------------------------------
def participant_info(p: Any, *, connection_state: str = "connected") -> ParticipantInfo:
    """An rtc.Participant (or anything shaped like one) → the Participant entity."""
    perms = getattr(p, "permissions", None)
    permissions = {k: bool(getattr(perms, k, False)) for k in _PERMISSIONS} if perms is not None else {}
    pubs: Mapping[str, Any] = getattr(p, "track_publications", None) or {}
    tracks = [{"sid": sid, "name": getattr(pub, "name", ""),
               "kind": _TRACK_KINDS.get(int(getattr(pub, "kind", 0)), "unknown"),
               "source": _SOURCES.get(int(getattr(pub, "source", 0)), "unknown"),
               "muted": bool(getattr(pub, "muted", False)),
               "subscribed": bool(getattr(pub, "subscribed", False))}
              for sid, pub in pubs.items()]
    return ParticipantInfo(identity=p.identity, sid=getattr(p, "sid", "") or "", name=getattr(p, "name", "") or "",
                           kind=_KINDS.get(int(getattr(p, "kind", 0)), "standard"),  # type: ignore[arg-type]
                           permissions=permissions, tracks=tracks, connection_state=connection_state,  # type: ignore[arg-type]
                           attributes=dict(getattr(p, "attributes", None) or {}),
                           metadata=getattr(p, "metadata", "") or "")


def is_user(p: Any, target_identity: str | None) -> bool:
    """Whether the agent should listen to this participant."""
    if target_identity:
        return bool(p.identity == target_identity)
    return _KINDS.get(int(getattr(p, "kind", 0))) in ("standard", "sip")


class RoomEventMapper:
    """Room events → session hooks. Holds which participant the agent is talking to."""

    def __init__(self, session: Any, *, participant_identity: str | None = None,
                 close_on_disconnect: bool = True, leave_grace_s: float = 0.0) -> None:
        self.session = session
        self.target = participant_identity
        self.linked: str | None = None
        self.close_on_disconnect = close_on_disconnect
        self.leave_grace_s = leave_grace_s
        self._ending: asyncio.TimerHandle | None = None  # the linked caller left; the end is pending
        self._joining: dict[str, asyncio.TimerHandle] = {}  # joined events waiting for tracks
        # the last tracks seen per participant: a leaver's tracks are unpublished just before it goes
        self._tracks: dict[str, list[dict[str, Any]]] = {}

    def connected(self, p: Any) -> None:
        if self._ending is not None and p.identity == self.linked:  # back within the grace
            self._ending.cancel()
            self._ending = None
        if self.linked is None and is_user(p, self.target):
            self.linked = p.identity
        if p.identity in self.session.participants or p.identity in self._joining:
            self.updated(p)  # the SDK announces everyone again after a reconnect
        elif getattr(p, "track_publications", None):
            self._report_join(p)
        else:  # its tracks follow in a moment: report the join with them
            self._joining[p.identity] = asyncio.get_running_loop().call_later(JOIN_TRACKS_WAIT_S, self._joined, p)

    def _joined(self, p: Any) -> None:
        handle = self._joining.pop(p.identity, None)
        if handle is not None:
            handle.cancel()
            self._report_join(p)

    def _report_join(self, p: Any) -> None:
        info = participant_info(p)
        if info.tracks:
            self._tracks[p.identity] = info.tracks
        self.session.participant_joined(info)

    def updated(self, p: Any) -> None:
        if p.identity in self._joining:
            if getattr(p, "track_publications", None):
                self._joined(p)
        elif p.identity in self.session.participants:
            info = participant_info(p)
            if info.tracks:
                self._tracks[p.identity] = info.tracks
            self.session.participant_updated(info)

    def disconnected(self, p: Any, reason: str = "") -> None:
        self._joined(p)  # a join not reported yet is reported before its leave
        info = self.session.participants.get(p.identity)
        seen = self._tracks.pop(p.identity, None)
        if info is not None and not info.tracks and seen:  # the leave reports what it published
            self.session.participant_updated(info.model_copy(update={"tracks": seen}))
        self.session.participant_left(p.identity, reason)
        if p.identity == self.linked and self.close_on_disconnect:
            if self.leave_grace_s > 0:
                self._ending = asyncio.get_running_loop().call_later(self.leave_grace_s, self._linked_gone)
            else:
                self._linked_gone()

    def _linked_gone(self) -> None:
        self._ending = None
        self.linked = None
        self.session.end("participant_left")

    def should_listen(self, p: Any) -> bool:
        if self.linked is None and is_user(p, self.target):
            self.linked = p.identity
        return p.identity == self.linked

    def chat(self, text: str, sender: str) -> None:
        if sender == self.linked or self.linked is None:
            self.session.push_text(text, source="transport", participant_identity=sender)

    def close(self) -> None:
        for handle in (self._ending, *self._joining.values()):
            if handle is not None:
                handle.cancel()
        self._ending = None
        self._joining.clear()


# rtc.DisconnectReason (livekit_models.proto) → the session's end reason
_DISCONNECT_REASONS = {0: "livekit_unreachable", 2: "duplicate_identity", 3: "server_shutdown",
                       4: "participant_removed", 5: "room_deleted", 10: "room_closed"}


def disconnect_reason(reason: int) -> str | None:
    """The session's end reason for the room's `disconnected(reason)`; None for our own leave."""
    if reason == _CLIENT_INITIATED:
        return None
    return _DISCONNECT_REASONS.get(int(reason), "room_disconnected")


def transcription_attributes(transport: Any, *, speaker: str, final: bool) -> dict[str, str]:
    attrs = {"lk.transcription_final": "true" if final else "false", "lk.segment_id": f"SG_{time.time_ns():x}"}
    track_sid = ""
    if speaker == "agent" and transport._track is not None:
        track_sid = transport._track.sid
    elif speaker == "user" and transport.mapper is not None and transport.mapper.linked:
        info = transport.session.participants.get(transport.mapper.linked)
        track_sid = next((t["sid"] for t in (info.tracks if info else []) if t["kind"] == "audio"), "")
    if track_sid:
        attrs["lk.transcribed_track_id"] = track_sid
    return attrs


# -- the transport ---------------------------------------------------------------------------
class LiveKitTransport:
    name = "livekit"
    # The playout writes this many 20 ms frames ahead of real time (see the Transport protocol):
    # the SDK's native queue then holds 200 ms, so a stall of this process's loop up to that
    # long does not run it dry and put silence into the reply (twenty calls in a real worker
    # on two busy cores: stalls of 60-160 ms seen; at 80 ms ahead one reply in twenty still
    # had gaps). The first frame still goes at once, so a reply starts no later; a barge-in
    # clears the queue, so it still stops at once, and clear_audio says how much it dropped,
    # so the history keeps only what was heard. output_queue_ms must hold it and a batch.
    output_lead_frames = 10

    def __init__(self, *, url: str, token: str, room: str = "", participant_identity: str | None = None,
                 input_rate: int = 16000, input_frame_ms: int = 20, output_queue_ms: int = 400,
                 close_on_disconnect: bool = True, leave_grace_s: float = 0.0, connect_timeout_s: float = 20.0,
                 publish_timeout_s: float = 10.0, reconnect_timeout_s: float = 30.0) -> None:
        self.url = url
        self.token = token
        self.room_name = room  # informational: the token decides which room is joined
        self.participant_identity = participant_identity
        self.input_rate = input_rate
        self.input_frame_ms = input_frame_ms
        self.output_queue_ms = output_queue_ms
        self.close_on_disconnect = close_on_disconnect
        self.leave_grace_s = leave_grace_s
        self.connect_timeout_s = connect_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self.room: Any = None
        self.session: Any = None
        self.mapper: RoomEventMapper | None = None
        self._source: Any = None
        self._track: Any = None
        self._out_rate = 0
        self._out_q: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=50)
        self._clears = 0  # clear_audio calls: a capture in flight during one is cleared after it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: dict[str, asyncio.Task[Any]] = {}
        self._reconnecting_since: float | None = None
        self._give_up: asyncio.TimerHandle | None = None
        self._closing = False
        # a full reconnect makes the SDK drop and re-announce everyone: not a leave unless they stay gone
        self._gone_while_reconnecting: dict[str, Any] = {}

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        t = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def connect(self, session: Any) -> None:
        self.session = session
        self.mapper = mapper = RoomEventMapper(session, participant_identity=self.participant_identity,
                                               close_on_disconnect=self.close_on_disconnect,
                                               leave_grace_s=self.leave_grace_s)
        room = self.room = rtc.Room()
        room.on("participant_connected", mapper.connected)
        room.on("participant_disconnected", self._on_participant_disconnected)
        for ev in ("participant_metadata_changed", "participant_name_changed", "participant_attributes_changed",
                   "participant_permissions_changed", "track_published", "track_unpublished", "track_muted",
                   "track_unmuted"):
            room.on(ev, self._updated)
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("track_unsubscribed", self._on_track_unsubscribed)
        room.on("reconnecting", self._on_reconnecting)
        room.on("reconnected", self._on_reconnected)
        room.on("disconnected", self._on_disconnected)
        room.register_text_stream_handler(CHAT_TOPIC, self._on_chat_stream)
        try:
            await asyncio.wait_for(room.connect(self.url, self.token, rtc.RoomOptions(auto_subscribe=True)),
                                   self.connect_timeout_s)
        except asyncio.TimeoutError:
            raise TransportTimeout(f"joining the LiveKit room at {self.url} timed out after "
                                   f"{self.connect_timeout_s:g}s (signal or media path)") from None
        except rtc.ConnectError as exc:
            message = str(exc)
            if "401" in message or "403" in message or "nauthorized" in message:
                raise TransportAuthError(f"LiveKit authentication failed joining the room: {message}; "
                                         "check LIVEKIT_API_KEY and LIVEKIT_API_SECRET") from exc
            raise
        session.room_updated(room.name, await room.sid)
        for p in room.remote_participants.values():
            mapper.connected(p)
            for pub in p.track_publications.values():
                if getattr(pub, "track", None) is not None and pub.subscribed:
                    self._on_track_subscribed(pub.track, pub, p)
        self._out_rate = session.tts.sample_rate if session.tts is not None else 24000
        if session.tts is not None:
            self._source = rtc.AudioSource(self._out_rate, 1, queue_size_ms=self.output_queue_ms)
            self._track = rtc.LocalAudioTrack.create_audio_track("agent-voice", self._source)
            try:
                await asyncio.wait_for(room.local_participant.publish_track(
                    self._track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)),
                    self.publish_timeout_s)
            except asyncio.TimeoutError:
                raise TransportTimeout(f"publishing the agent's audio track timed out after "
                                       f"{self.publish_timeout_s:g}s") from None
            self._spawn(self._pump_audio(), "lk-audio-out")

    # -- connection ----------------------------------------------------------------------------
    def _on_participant_disconnected(self, p: Any) -> None:
        assert self.mapper is not None
        if self._reconnecting_since is not None:
            self._gone_while_reconnecting[p.identity] = p
        else:
            self.mapper.disconnected(p, "disconnected")

    def _on_reconnecting(self) -> None:
        if self._reconnecting_since is not None:
            return
        self._reconnecting_since = time.monotonic()
        self.session.emit(Reconnecting(transport=self.name))
        # the SDK retries a lost signal connection itself: the session is disconnected meanwhile
        self.session.transport_disconnected("reconnecting")
        self._give_up = asyncio.get_running_loop().call_later(self.reconnect_timeout_s, self._unreachable)

    def _on_reconnected(self) -> None:
        if self._reconnecting_since is None:
            return
        downtime = (time.monotonic() - self._reconnecting_since) * 1000
        self._reconnecting_since = None
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        self.session.emit(Reconnected(transport=self.name, downtime_ms=round(downtime, 1)))
        self.session.transport_reconnected()  # disconnected → connected → active (or paused)
        gone, self._gone_while_reconnecting = self._gone_while_reconnecting, {}
        for identity, p in gone.items():
            if identity not in self.room.remote_participants and self.mapper is not None:
                self.mapper.disconnected(p, "disconnected")
        # streams of tracks the restarted connection no longer has would yield silence forever
        current = {sid for p in self.room.remote_participants.values()
                   for sid, pub in p.track_publications.items() if pub.subscribed}
        for sid in [sid for sid in self._streams if sid not in current]:
            self._streams.pop(sid).cancel()

    def _unreachable(self) -> None:
        self._give_up = None
        if self._closing:
            return
        self._closing = True
        self.session.emit(Error(source="transport", recoverable=False,
                                message=f"the LiveKit server at {self.url} could not be reached again within "
                                        f"{self.reconnect_timeout_s:g}s"))
        self.session.end("livekit_unreachable")

    def _on_disconnected(self, reason: int = 0) -> None:
        end = disconnect_reason(reason)
        if end is None or self._closing:
            return
        self._closing = True
        if end != "room_deleted":
            self.session.emit(Error(source="transport", recoverable=False,
                                    message=f"disconnected from the LiveKit room: {end}"))
        self.session.end(end)

    def _updated(self, *args: Any) -> None:
        assert self.mapper is not None
        for a in args:
            if hasattr(a, "identity") and hasattr(a, "track_publications"):
                self.mapper.updated(a)
                return

    # -- input -------------------------------------------------------------------------------
    def _on_track_subscribed(self, track: Any, pub: Any, participant: Any) -> None:
        assert self.mapper is not None
        if not self.mapper.should_listen(participant):
            return
        self.mapper.updated(participant)
        previous = self._streams.pop(track.sid, None)  # subscribed again after a reconnect
        if previous is not None:
            previous.cancel()
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            stream = rtc.AudioStream(track, sample_rate=self.input_rate, num_channels=1,
                                     frame_size_ms=self.input_frame_ms)
            self._streams[track.sid] = self._spawn(self._read_audio(stream), f"lk-audio-in-{track.sid}")
        elif track.kind == rtc.TrackKind.KIND_VIDEO and self.session.options.vision:
            self._streams[track.sid] = self._spawn(self._read_video(rtc.VideoStream(track)), f"lk-video-{track.sid}")

    def _on_track_unsubscribed(self, track: Any, pub: Any, participant: Any) -> None:
        t = self._streams.pop(getattr(track, "sid", ""), None)
        if t is not None:
            t.cancel()
        # The native side has already released an unsubscribed remote track's handle; without
        # this the Python object drops it again when collected ("Attempted to drop unknown FFI
        # handle" at every call's end, livekit 1.2.1).
        handle = getattr(track, "_ffi_handle", None)
        if handle is not None:
            handle.mark_consumed()

    async def _read_audio(self, stream: Any) -> None:
        try:
            async for event in stream:
                f = event.frame
                self.session.push_audio(f.data, f.sample_rate, f.num_channels)
        finally:
            await stream.aclose()

    async def _read_video(self, stream: Any) -> None:
        last = 0.0
        try:
            async for event in stream:
                now = time.monotonic()
                if now - last < 1.0 or self.session.user_state != "speaking":
                    continue
                last = now
                frame = event.frame.convert(rtc.VideoBufferType.RGB24)
                rgb = np.frombuffer(frame.data, dtype=np.uint8).reshape(frame.height, frame.width, 3)
                self.session.push_video_frame(encode_png(np.ascontiguousarray(downscale(rgb))), "image/png")
        finally:
            await stream.aclose()

    def _on_chat_stream(self, reader: Any, participant_identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            assert self.mapper is not None
            self.mapper.chat(text, participant_identity)

        self._spawn(read(), "lk-chat")

    # -- output ------------------------------------------------------------------------------
    def write_audio(self, frame: np.ndarray, sample_rate: int) -> None:
        if self._source is None:
            return
        try:
            self._out_q.put_nowait(frame.copy())  # the playout reuses its buffer
        except asyncio.QueueFull:  # the room is not keeping up: drop rather than block the clock
            pass

    async def _pump_audio(self) -> None:
        """Frames to the SDK's AudioSource, the ones that waited meanwhile in one capture.

        Each `capture_frame` is an FFI round trip: the request, then its callback through the
        SDK's event thread and this loop. With twenty calls on a busy worker that round trip
        outlasts a 20 ms frame; one capture per frame then let the native queue run dry
        between frames (the caller heard the reply chopped into 40 ms bursts with gaps) while
        the frames backed up here. Batching keeps the native queue fed at any round-trip time
        and costs nothing when the loop keeps up (a batch of one)."""
        assert self._source is not None
        while True:
            frames = [await self._out_q.get()]
            while not self._out_q.empty():
                frames.append(self._out_q.get_nowait())
            pcm = frames[0] if len(frames) == 1 else np.concatenate(frames)
            cleared = self._clears
            await self._source.capture_frame(rtc.AudioFrame(pcm.tobytes(), self._out_rate, 1, pcm.size))
            if self._clears != cleared:  # a barge-in cleared the queue while this batch went in
                self._source.clear_queue()

    def clear_audio(self) -> float:
        """Drop the reply's audio not yet heard; returns its length in seconds (the frames
        waiting here and what the SDK's native queue still held)."""
        self._clears += 1
        dropped = 0
        while not self._out_q.empty():
            dropped += self._out_q.get_nowait().size
        dropped_s = dropped / self._out_rate if self._out_rate else 0.0
        if self._source is not None:
            dropped_s += self._source.queued_duration
            self._source.clear_queue()
        return dropped_s

    async def send_text(self, text: str) -> None:
        if self.room is not None and self.room.isconnected():
            await self.room.local_participant.send_text(text, topic=CHAT_TOPIC)

    async def publish_transcript(self, text: str, *, speaker: str, final: bool) -> None:
        """A transcription text stream as LiveKit clients expect it: topic `lk.transcription`,
        the transcribed track in the attributes, the user's lines sent on the user's behalf."""
        if self.room is None or not self.room.isconnected():
            return
        attrs = transcription_attributes(self, speaker=speaker, final=final)
        sender = self.mapper.linked if speaker == "user" and self.mapper is not None else None
        try:
            writer = await self.room.local_participant.stream_text(
                topic=TRANSCRIPTION_TOPIC, attributes=attrs, sender_identity=sender)
            await writer.write(text)
            await writer.aclose()
        except Exception as exc:  # noqa: BLE001 - a transcript is not worth a session
            log.warning("transcription publish failed: %s", exc)

    async def aclose(self) -> None:
        self._closing = True
        if self._give_up is not None:
            self._give_up.cancel()
        if self.mapper is not None:
            self.mapper.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        if self._source is not None:
            await self._source.aclose()
        if self.room is not None:
            await self.room.disconnect()
