"""LiveKit server calls through `livekit-api`: rooms (RoomService), explicit agent
dispatch (AgentDispatchService), and the agent's join token.

Room creation before a session is optional (LIVEKIT_CREATE_ROOMS, default on): LiveKit
creates rooms on first join anyway, but creating it first gives the job the room's sid
and our empty-timeout.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import aiohttp
from django.conf import settings
from livekit import api

from controlplane.env import env_bool, env_int
from controlplane.errors import JobConfigurationError
from workers.models import Job

T = TypeVar("T")
AGENT_IDENTITY_PREFIX = "agent-"
log = logging.getLogger(__name__)


class LiveKitNotConfigured(JobConfigurationError):
    pass


class LiveKitAuthError(JobConfigurationError):
    """The LiveKit server refused our API key/secret (Twirp 401/403)."""


class LiveKitUnreachable(ConnectionError):
    """The LiveKit server's API could not be reached from this worker (still the worker's
    failure for its breaker: a healthy worker on a healthy network reaches it)."""


def credentials() -> tuple[str, str, str]:
    url, key, secret = settings.LIVEKIT_URL, settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET
    if not (url and key and secret):
        raise LiveKitNotConfigured("LiveKit is not configured: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    return url, key, secret


def agent_token(*, room: str, identity: str, name: str = "", metadata: dict[str, Any] | None = None,
                ttl: timedelta = timedelta(hours=6)) -> str:
    """A join token for the agent participant: hidden from nothing, may publish, subscribe
    and send data, and is marked as an agent."""
    _, key, secret = credentials()
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True, agent=True)
    token = (api.AccessToken(key, secret).with_identity(identity).with_name(name or identity).with_kind("agent")
             .with_grants(grants).with_ttl(ttl))
    if metadata:
        token = token.with_metadata(json.dumps(metadata))
    return token.to_jwt()


async def _call(fn: Callable[[api.LiveKitAPI], Awaitable[T]]) -> T:
    url, key, secret = credentials()
    lkapi = api.LiveKitAPI(url, key, secret, failover=False)
    try:
        return await fn(lkapi)
    finally:
        await lkapi.aclose()


def _run(fn: Callable[[api.LiveKitAPI], Awaitable[T]], what: str) -> T:
    """From sync code (a Celery pool thread, a command): run one call on a private loop."""
    try:
        return asyncio.run(_call(fn))
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
        raise LiveKitUnreachable(f"the LiveKit server at {settings.LIVEKIT_URL} could not be reached ({what}): "
                                 f"{exc or type(exc).__name__}") from exc
    except api.TwirpError as exc:
        if exc.status in (401, 403):
            raise LiveKitAuthError(
                f"LiveKit authentication failed ({what}: {exc.status} {exc.message}); "
                "check LIVEKIT_API_KEY and LIVEKIT_API_SECRET") from exc
        raise


def room_create(name: str, *, empty_timeout: int | None = None, metadata: dict[str, Any] | None = None) -> api.Room:
    timeout = empty_timeout if empty_timeout is not None else env_int("LIVEKIT_ROOM_EMPTY_TIMEOUT", 300, minimum=0)
    request = api.CreateRoomRequest(name=name, empty_timeout=timeout, metadata=json.dumps(metadata or {}))
    return _run(lambda lk: lk.room.create_room(request), "CreateRoom")


def rooms_list(names: list[str] | None = None) -> list[api.Room]:
    return list(_run(lambda lk: lk.room.list_rooms(api.ListRoomsRequest(names=names or [])), "ListRooms").rooms)


def room_delete(name: str) -> bool:
    """Delete a room; False when it was already gone."""
    try:
        _run(lambda lk: lk.room.delete_room(api.DeleteRoomRequest(room=name)), "DeleteRoom")
    except api.TwirpError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def dispatch_create(*, room: str, agent_name: str, metadata: dict[str, Any] | None = None) -> api.AgentDispatch:
    """Register an explicit agent dispatch on the LiveKit server (for rooms whose agents
    LiveKit should also know about, e.g. to show them in its console)."""
    request = api.CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=json.dumps(metadata or {}))
    return _run(lambda lk: lk.agent_dispatch.create_dispatch(request), "CreateDispatch")


def prepare_room(*, job: Any) -> tuple[str, str, dict[str, Any]]:
    """For a livekit job: (server url, the agent's token, room info to merge into job.room)."""
    url, _, _ = credentials()
    room_info: dict[str, Any] = {"name": job.room_name}
    if env_bool("LIVEKIT_CREATE_ROOMS", True):
        existed = bool(rooms_list([job.room_name]))
        room = room_create(job.room_name, metadata={"job_id": job.job_id})
        # a room the job created is the job's to delete when it ends; one that was there is not
        room_info.update({"sid": room.sid, "empty_timeout": room.empty_timeout, "created_by_job": not existed})
        Job.objects.filter(pk=job.pk).update(room={**(job.room or {}), **room_info})
    identity = f"{AGENT_IDENTITY_PREFIX}{job.job_id}"
    token = agent_token(room=job.room_name, identity=identity, name=job.agent.agent_id if job.agent else "agent",
                        metadata={"job_id": job.job_id, "participant_identity": job.participant_identity})
    return url, token, room_info


def room_delete_on_end(*, job: Any) -> None:
    """After a livekit job: delete the room it created (LIVEKIT_DELETE_ROOM_ON_END, default on;
    job metadata `delete_room_on_end` overrides), so rooms do not outlive their calls."""
    room = dict(job.room or {})
    wanted = job.metadata.get("delete_room_on_end") if isinstance(job.metadata, dict) else None
    if not isinstance(wanted, bool):
        wanted = settings.LIVEKIT_DELETE_ROOM_ON_END
    if not wanted or not room.get("created_by_job"):
        return
    try:
        deleted = room_delete(job.room_name)
    except Exception as exc:  # noqa: BLE001 - the job's outcome stands; the room's empty-timeout remains
        log.warning("[job=%s] could not delete LiveKit room %s: %s", job.job_id, job.room_name, exc)
        return
    log.info("[job=%s] LiveKit room %s %s", job.job_id, job.room_name, "deleted" if deleted else "was already gone")
