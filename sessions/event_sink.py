"""The Django side of the runtime's `EventSink`: store every event, then broadcast it.

`emit()` only appends to a deque, so the audio loop never waits on the database or Redis.
One writer thread per process drains every open sink: it stores each batch with `session_events_store` (gap-free seq, one transaction)
and only then hands the envelopes for the channel-layer group `session-<id>` to the
process's one broadcaster (`controlplane.broadcaster`, which carries fleet events too),
waiting until they went out, so nothing a dashboard shows can be missing from the
database. The same transaction keeps the session's participant rows
(`sessions.participants`) and, at most once a second, its live state on the session row
(`sessions.live_state`). A database error is logged and the batch retried with backoff;
the session keeps running.

Channel-layer message (consumed by `sessions.consumers.SessionConsumer`):
`{"type": "session.events", "events": [envelope, ...]}`, envelopes in seq order.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from controlplane.broadcaster import GroupSend, asend, broadcaster
from sessions.event_rows import EventValues, event_rows_insert, live_states_write
from sessions.live_state import AudioSnapshot, LiveState
from sessions.models import AgentSession, SessionEvent
from sessions.participants import participants_apply
from sessions.services import session_events_store, session_live_state_write

log = logging.getLogger(__name__)

GROUP_PREFIX = "session-"
MESSAGE_TYPE = "session.events"
# Audio events arrive aggregated: the runtime meters audio (runtime.audio.LevelMeter)
# and emits about one audio_received / audio_streamed per second; they are stored as they come.
FLUSH_INTERVAL_S = 0.005  # linger after the first pending event: a burst becomes one write
MAX_BATCH = 100
MAX_PENDING = 50_000  # beyond this (database down for long) the oldest events are dropped
RETRY_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

Envelope = dict[str, Any]
Pending = tuple[str, datetime, dict[str, Any]]


# --- who hears of stored events ------------------------------------------------------------
# Apps above sessions (webhooks) subscribe here in their AppConfig.ready(), so sessions never
# imports them. A listener runs on the writer thread (or after the commit of a direct append),
# never on the audio path; it must be cheap and must not raise.
StoredListener = Callable[[Sequence[SessionEvent]], None]
_stored_listeners: list[StoredListener] = []


def on_events_stored(listener: StoredListener) -> None:
    if listener not in _stored_listeners:
        _stored_listeners.append(listener)


def _notify_stored(rows: Sequence[SessionEvent]) -> None:
    for listener in list(_stored_listeners):
        try:
            listener(rows)
        except Exception:  # noqa: BLE001 - a listener's bug must not stop the event log
            log.exception("listener %r failed on stored events", listener)


def session_group(session_id: str) -> str:
    return f"{GROUP_PREFIX}{session_id}"


def envelopes_message(envelopes: list[Envelope]) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "events": envelopes}


def _group_envelopes(rows: Iterable[SessionEvent]) -> dict[str, list[Envelope]]:
    groups: dict[str, list[Envelope]] = {}
    for row in sorted(rows, key=lambda r: (r.session_id, r.seq)):
        groups.setdefault(row.session_id, []).append(row.envelope())
    return groups


async def abroadcast_session_events(rows: Sequence[SessionEvent]) -> None:
    """Broadcast stored rows to their sessions' groups now (from code on an event loop)."""
    await asend(_session_sends(rows))


def broadcast_session_events(rows: Sequence[SessionEvent]) -> None:
    """Broadcast rows appended with `session_events_store` outside a sink.

    Inside a transaction the broadcast waits for the commit: a listener that sees a seq must
    be able to read it (and every seq before it) from the database.
    """
    rows = list(rows)
    if not rows:
        return
    transaction.on_commit(lambda: broadcaster.send(_session_sends(rows)))


def _session_sends(rows: Iterable[SessionEvent]) -> list[GroupSend]:
    return [(session_group(session_id), envelopes_message(envelopes)) for session_id, envelopes in _group_envelopes(rows).items()]


def _normalize(event: Any) -> Pending:
    """A runtime model (`type`, `at`, payload) or a dict `{"type", "data", "at"?}`."""
    if isinstance(event, dict):
        type_ = str(event["type"])
        at = event.get("at")
        data = dict(event.get("data") or {})
    else:
        type_ = str(event.type)
        at = getattr(event, "at", None)
        data = event.model_dump(mode="json", exclude={"type", "at"})
    if isinstance(at, str):
        at = parse_datetime(at)
    if not isinstance(at, datetime):
        at = datetime.now(dt_timezone.utc)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=dt_timezone.utc)
    return type_, at, data


class _LoopWaiter:
    """A flush waiter on an event loop: the writer thread `set()`s it like a threading.Event."""

    def __init__(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        self._loop, self._done = loop, done

    def set(self) -> None:
        def resolve() -> None:
            if not self._done.done():
                self._done.set_result(None)

        try:
            self._loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


# --- the sink ----------------------------------------------------------------------------
class DjangoEventSink:
    """EventSink for one session. Thread-safe `emit`; `flush`/`close` block until stored."""

    def __init__(self, session_id: str, *, max_batch: int = MAX_BATCH) -> None:
        self.session_id = session_id
        self.max_batch = max_batch
        self.dropped = 0
        self.stored = 0
        self._queue: deque[Any] = deque()
        self._closed = False
        self._closing: asyncio.Future[bool] | None = None  # aclose() under way (kept: it is shielded)
        # Only the writer thread touches what follows.
        self._pending: deque[Pending] = deque()
        self._failures = 0
        self._retry_at = 0.0
        self._flush_waiters: list[threading.Event | _LoopWaiter] = []
        self._waiters_lock = threading.Lock()
        self._live = LiveState()
        _writer().register(self)

    def track_audio_state(self, snapshot: AudioSnapshot) -> None:
        """Where the writer reads the runtime's audio meter for the row's audio_state (about
        once a second, on its own thread: the callable must only read plain attributes)."""
        self._live.audio = snapshot

    # -- called from the runtime (any thread, usually the audio loop) --
    def emit(self, event: Any) -> None:
        if self._closed:
            log.debug("event %s emitted after the sink of %s closed", getattr(event, "type", event), self.session_id)
            return
        self._queue.append(event)
        _writer().wake()

    def flush(self, timeout: float = 10.0) -> bool:
        """Store and broadcast everything emitted so far."""
        done = threading.Event()
        with self._waiters_lock:
            self._flush_waiters.append(done)
        _writer().wake(now=True)
        ok = done.wait(timeout)
        if not ok:
            log.error("events of %s not flushed within %.1fs (%d pending)", self.session_id, timeout, self.backlog)
        return ok

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, then stop accepting events. Called when the session ends."""
        ok = self.flush(timeout)
        self._closed = True
        ok = self.flush(timeout) and ok  # anything emitted between the two
        _writer().unregister(self)
        return ok

    async def aflush(self, timeout: float = 10.0) -> bool:
        """`flush` from an event loop, holding no thread while it waits: hundreds of sessions
        ending at once would otherwise fill the loop's small default executor, and every other
        `to_thread` call of every session (status mirroring, tool setup) would queue behind."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._waiters_lock:
            self._flush_waiters.append(_LoopWaiter(loop, done))
        _writer().wake(now=True)
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            log.error("events of %s not flushed within %.1fs (%d pending)", self.session_id, timeout, self.backlog)
            return False
        return True

    async def aclose(self, timeout: float = 10.0) -> bool:
        """`close` from an event loop. Shielded: a caller that stops waiting (the job context's
        shutdown timeout) must not leave the sink half closed — it still flushes, closes and
        leaves the writer, as the thread of a `to_thread(close)` would have."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._aclose(timeout))
        return await asyncio.shield(self._closing)

    async def _aclose(self, timeout: float) -> bool:
        try:
            ok = await self.aflush(timeout)
            self._closed = True
            ok = await self.aflush(timeout) and ok  # anything emitted between the two
        finally:
            _writer().unregister(self)
        return ok

    @property
    def backlog(self) -> int:
        return len(self._queue) + len(self._pending)

    # -- called on the writer thread --
    def _take(self) -> None:
        while True:
            try:
                event = self._queue.popleft()
            except IndexError:
                break
            try:
                type_, at, data = _normalize(event)
            except Exception:  # noqa: BLE001 - a malformed event must not stop the others
                log.exception("malformed event for %s: %r", self.session_id, event)
                continue
            self._live.feed(type_, at, data)
            self._pending.append((type_, at, data))
        overflow = len(self._pending) - MAX_PENDING
        if overflow > 0:
            for _ in range(overflow):
                self._pending.popleft()
            self.dropped += overflow
            log.error("event backlog of %s over %d: dropped %d oldest", self.session_id, MAX_PENDING, overflow)

    def _write(self, force: bool) -> None:
        waiters = self._claim_waiters()
        force = force or bool(waiters)
        self._take()
        if self._pending and (force or time.monotonic() >= self._retry_at):
            self._store(force)
        elif not self._pending and time.monotonic() >= self._retry_at:
            self._store_live_state(force)
        self._release_waiters(waiters)

    def _store(self, force: bool = False) -> None:
        while self._pending:
            batch = [self._pending[i] for i in range(min(self.max_batch, len(self._pending)))]
            # the live state goes with the batch that holds the last events it has seen
            live = self._live.due(force=force) if len(batch) == len(self._pending) else None
            try:
                rows = session_events_store(session_id=self.session_id, events=batch, live_state=live)
            except Exception:  # noqa: BLE001 - keep the session alive; retry later
                self._failed(f"storing {len(batch)} events")
                return
            for _ in batch:
                self._pending.popleft()
            if live:
                self._live.written(live)
            self._failures = 0
            self.stored += len(rows)
            broadcaster.send_and_wait(_session_sends(rows))  # stored, then sent: a flush covers both
            _notify_stored(rows)

    # -- the writer's shared transaction (see _Writer._cycle) --
    def _claim_waiters(self) -> list[threading.Event | _LoopWaiter]:
        with self._waiters_lock:
            waiters, self._flush_waiters = self._flush_waiters, []
        return waiters

    def _release_waiters(self, waiters: list[threading.Event | _LoopWaiter]) -> None:
        """Flushed if nothing is left to store; else (still failing) the waiters wait for a
        later attempt that succeeds, or time out."""
        if not waiters:
            return
        if self._pending or self._queue:
            with self._waiters_lock:
                self._flush_waiters[:0] = waiters
        else:
            for waiter in waiters:
                waiter.set()

    def _idle(self, now: float, force: bool) -> bool:
        """Nothing to store this cycle: no event queued or pending, no flush waiting, and the
        live state not due yet (`LiveState.due` would return None before its interval)."""
        return not force and not self._queue and not self._pending and self._live.too_soon(now)

    def _due(self, force: bool) -> tuple[list[Pending], dict[str, Any] | None] | None:
        """The next batch (and the live state, when due) to store, or None: nothing due, or
        backing off after a failure."""
        self._take()
        if time.monotonic() < self._retry_at and not force:
            return None
        if self._pending:
            batch = [self._pending[i] for i in range(min(self.max_batch, len(self._pending)))]
            return batch, self._live.due(force=force) if len(batch) == len(self._pending) else None
        live = self._live.due(force=force)
        return ([], live) if live else None

    def _store_due(self, batch: list[Pending], live: dict[str, Any] | None) -> list[SessionEvent]:
        """Write one batch inside the caller's transaction (no bookkeeping until it commits)."""
        if batch:
            return session_events_store(session_id=self.session_id, events=batch, live_state=live)
        if live:
            session_live_state_write(session_id=self.session_id, fields=live)
        return []

    def _stored_due(self, batch: list[Pending], live: dict[str, Any] | None, rows: list[SessionEvent]) -> None:
        """The shared transaction committed: the batch is stored."""
        for _ in batch:
            self._pending.popleft()
        if live:
            self._live.written(live)
        self._failures = 0
        self.stored += len(rows)

    def _store_live_state(self, force: bool) -> None:
        """No events to store: the live state alone, when due (the audio meter moves on)."""
        live = self._live.due(force=force)
        if not live:
            return
        try:
            session_live_state_write(session_id=self.session_id, fields=live)
        except Exception:  # noqa: BLE001 - keep the session alive; retry later
            self._failed("storing the live state")
            return
        self._failures = 0
        self._live.written(live)

    def _failed(self, what: str) -> None:
        delay = RETRY_BACKOFF_S[min(self._failures, len(RETRY_BACKOFF_S) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + delay
        log.warning("%s of %s failed (attempt %d); retrying in %.2fs", what, self.session_id, self._failures, delay,
                    exc_info=True)
        connection.close()  # a broken connection is reopened on the next attempt


class _Writer:
    """The process's one writer thread; it exits when no sink is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: list[DjangoEventSink] = []
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, sink: DjangoEventSink) -> None:
        with self._lock:
            self._sinks.append(sink)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-sink-writer", daemon=True)
                self._thread.start()

    def unregister(self, sink: DjangoEventSink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)
        self.wake(now=True)

    def join_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the writer thread has exited (no sink open). For tests and shutdown."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        self.wake(now=True)
        thread.join(timeout)
        return not thread.is_alive()

    def wake(self, now: bool = False) -> None:
        if now:
            self._urgent.set()
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(timeout=0.25)
                if self._wake.is_set() and not self._urgent.is_set():
                    # Linger a little so a burst becomes one transaction and one message.
                    self._urgent.wait(FLUSH_INTERVAL_S)
                self._wake.clear()
                self._urgent.clear()
                with self._lock:
                    sinks = list(self._sinks)
                    if not sinks:
                        self._thread = None
                        return
                self._cycle(sinks)
        finally:
            connection.close()  # this thread's; an idle writer holds no database connection


    def _cycle(self, sinks: list[DjangoEventSink]) -> None:
        """Store what every sink has due in ONE transaction, then broadcast it all in one
        hand-over to the broadcaster: with hundreds of sessions in a process, a transaction
        and a broadcaster round trip per session and cycle is what made events late. If the
        shared transaction fails, each sink stores on its own (its own retry and backoff), so
        one session's bad batch cannot hold the others back."""
        claimed = {sink: sink._claim_waiters() for sink in sinks}
        while True:
            work: list[tuple[DjangoEventSink, list[Pending], dict[str, Any] | None]] = []
            now = time.monotonic()
            for sink in sinks:
                if sink._idle(now, bool(claimed[sink])):
                    continue  # what _due would say, without its calls: most sinks of a cycle have nothing
                try:
                    due = sink._due(force=bool(claimed[sink]))
                except Exception:  # noqa: BLE001 - one sink's bug must not stop the others
                    log.exception("event sink of %s failed", sink.session_id)
                    continue
                if due is not None:
                    work.append((sink, *due))
            if not work:
                break
            try:
                with transaction.atomic():
                    if len(work) > 1 and connection.vendor == "postgresql":
                        stored = _store_many(work)
                    else:
                        stored = [(sink, batch, live, sink._store_due(batch, live)) for sink, batch, live in work]
            except Exception:  # noqa: BLE001 - fall back to one transaction per sink
                log.warning("shared event batch of %d sessions failed; storing each on its own", len(work), exc_info=True)
                connection.close()  # a broken connection is reopened on the next attempt
                for sink, _, _ in work:
                    try:
                        sink._write(force=bool(claimed[sink]))
                    except Exception:  # noqa: BLE001
                        log.exception("event sink of %s failed", sink.session_id)
                break
            rows: list[SessionEvent] = []
            for sink, batch, live, sink_rows in stored:
                sink._stored_due(batch, live, sink_rows)
                rows.extend(sink_rows)
            if rows:
                broadcaster.send_and_wait(_session_sends(rows))  # stored, then sent: a flush covers both
                _notify_stored(rows)
            if not any(sink._pending for sink, _, _ in work):
                break  # else a sink had more than one batch: go on at once
        for sink, waiters in claimed.items():
            sink._release_waiters(waiters)


class SessionRowMissing(Exception):
    pass


def _store_many(work: list[tuple[DjangoEventSink, list[Pending], dict[str, Any] | None]],
                ) -> list[tuple[DjangoEventSink, list[Pending], dict[str, Any] | None, list[SessionEvent]]]:
    """Every sink's batch in a few statements, inside the caller's transaction: the seqs of all
    sessions from ONE `UPDATE … FROM unnest(…) RETURNING` (each session's counter bumped by
    its batch's size under the row lock, as `session_events_append` does for one: gap-free),
    then ONE multi-row INSERT and ONE UPDATE of the due live states (sessions.event_rows). Per
    session only what is rare: participant rows. A session whose row is gone fails the whole transaction,
    and the writer then stores each sink on its own."""
    table = AgentSession._meta.db_table
    counts = [(sink.session_id, len(batch)) for sink, batch, _ in work if batch]
    last: dict[str, int] = {}
    if counts:
        # arrays, not a VALUES list: the statement's text is the same whatever the count, so
        # psycopg splits it once (a placeholder pair per session was re-parsed every cycle)
        with connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" AS s SET last_seq = s.last_seq + v.n, last_activity_at = %s '
                "FROM unnest(%s::text[], %s::bigint[]) AS v(id, n) WHERE s.session_id = v.id "
                "RETURNING s.session_id, s.last_seq",
                [timezone.now(), [session_id for session_id, _ in counts], [n for _, n in counts]])
            last = dict(cursor.fetchall())
        missing = {session_id for session_id, _ in counts} - set(last)
        if missing:
            raise SessionRowMissing(f"no session row for {', '.join(sorted(missing))}")
    values: list[EventValues] = []
    lives: dict[str, dict[str, Any]] = {}
    for sink, batch, live in work:
        if batch:
            first = last[sink.session_id] - len(batch) + 1
            values.extend((sink.session_id, first + i, type_, at, data) for i, (type_, at, data) in enumerate(batch))
            participants_apply(session_id=sink.session_id, events=batch)
        if live:
            lives[sink.session_id] = live
    live_states_write(lives)  # every due live state in one UPDATE (sessions.event_rows)
    # one INSERT for every session's rows, without Model.__init__ per event (sessions.event_rows)
    inserted = iter(event_rows_insert(values))
    return [(sink, batch, live, [next(inserted) for _ in batch]) for sink, batch, live in work]


_writer_instance = _Writer()


def _writer() -> _Writer:
    return _writer_instance


def wait_writer_idle(timeout: float = 5.0) -> bool:
    return _writer_instance.join_idle(timeout)


def session_events_append_and_broadcast(*, session_id: str, events: Sequence[Pending]) -> list[SessionEvent]:
    """Store events now (not through a sink) and broadcast them after the commit."""
    rows = session_events_store(session_id=session_id, events=events)
    broadcast_session_events(rows)
    transaction.on_commit(lambda: _notify_stored(rows))
    return rows


__all__ = [
    "DjangoEventSink",
    "abroadcast_session_events",
    "broadcast_session_events",
    "envelopes_message",
    "on_events_stored",
    "session_events_append_and_broadcast",
    "session_group",
]
