"""Our LiveKit calls go through the real `livekit-api` client to the LiveKit double's Twirp
endpoints (loopback is enough: no media here)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from livekit import api

from tests.doubles.livekit_server import LiveKitDoubleThread
from workers import livekit
from workers.dispatch import job_dispatch
from workers.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def lk(settings: Any) -> Iterator[LiveKitDoubleThread]:
    with LiveKitDoubleThread(api_key="APItest", api_secret="a-long-enough-secret-for-hs256-signing!") as double:
        settings.LIVEKIT_URL, settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET = double.url, double.api_key, double.api_secret
        yield double


def test_rooms_are_created_listed_and_deleted_over_twirp(lk: LiveKitDoubleThread) -> None:
    room = livekit.room_create("support-1", empty_timeout=60, metadata={"job_id": "job_1"})
    assert room.name == "support-1" and room.sid.startswith("RM_") and room.empty_timeout == 60
    assert livekit.room_create("support-1").sid == room.sid  # idempotent, as on the server
    assert [r.name for r in livekit.rooms_list()] == ["support-1"]
    livekit.room_delete("support-1")
    assert livekit.rooms_list() == []
    call = lk.calls("CreateRoom")[0]
    assert call["content_type"] == "application/protobuf" and json.loads(call["body"]["metadata"]) == {"job_id": "job_1"}


def test_an_explicit_agent_dispatch_is_created(lk: LiveKitDoubleThread) -> None:
    dispatch = livekit.dispatch_create(room="support-1", agent_name="controlplane", metadata={"job_id": "job_2"})
    assert dispatch.id.startswith("AD_") and dispatch.agent_name == "controlplane" and dispatch.room == "support-1"


def test_a_wrong_secret_is_refused_like_the_server_does(lk: LiveKitDoubleThread, settings: Any) -> None:
    settings.LIVEKIT_API_SECRET = "not-the-right-secret-at-all-0123456789"
    with pytest.raises(livekit.LiveKitAuthError) as exc:
        livekit.rooms_list()
    assert isinstance(exc.value.__cause__, api.TwirpError) and exc.value.__cause__.status == 401
    assert "LiveKit authentication failed (ListRooms: 401" in str(exc.value) and "LIVEKIT_API_SECRET" in str(exc.value)
    assert settings.LIVEKIT_API_SECRET not in str(exc.value)  # the secret itself is never echoed


def test_the_agent_token_joins_only_its_room_as_an_agent(lk: LiveKitDoubleThread) -> None:
    token = livekit.agent_token(room="support-1", identity="agent-job_3", metadata={"job_id": "job_3"})
    claims = api.TokenVerifier(lk.api_key, lk.api_secret).verify(token)
    assert claims.identity == "agent-job_3" and claims.kind == "agent"
    assert claims.video.room_join and claims.video.room == "support-1" and claims.video.agent
    assert not claims.video.room_create and not claims.video.room_admin


def test_a_livekit_job_gets_its_room_created_and_a_token(lk: LiveKitDoubleThread, active_agent: Any) -> None:
    job = Job.objects.select_related("agent").get(pk=job_dispatch(agent_id=active_agent.agent_id, room="call-42", participant_identity="caller").pk)
    assert job.transport == "livekit"  # the default once LiveKit is configured
    url, token, room = livekit.prepare_room(job=job)
    assert url == lk.url and room["sid"] == lk.double.rooms["call-42"].sid
    assert Job.objects.get(pk=job.pk).room["sid"] == room["sid"]
    assert api.TokenVerifier(lk.api_key, lk.api_secret).verify(token).video.room == "call-42"


def test_the_double_also_speaks_protobuf_json(lk: LiveKitDoubleThread) -> None:
    token = api.AccessToken(lk.api_key, lk.api_secret).with_grants(api.VideoGrants(room_create=True)).to_jwt()
    request = urllib.request.Request(
        lk.url.replace("ws://", "http://") + "/twirp/livekit.RoomService/CreateRoom",
        data=json.dumps({"name": "json-room", "emptyTimeout": 30}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = json.loads(response.read())
    assert body["name"] == "json-room" and body["emptyTimeout"] == 30
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(urllib.request.Request(request.full_url, data=b"{}", headers={"Content-Type": "application/json"}))
    assert exc.value.code == 401


def _job_with_its_room(agent: Any, room: str, **metadata: Any) -> Job:
    job = Job.objects.select_related("agent").get(pk=job_dispatch(agent_id=agent.agent_id, room=room, metadata=metadata).pk)
    livekit.prepare_room(job=job)
    return Job.objects.get(pk=job.pk)


def test_the_room_a_job_created_is_deleted_when_it_ends_as_configured(
    lk: LiveKitDoubleThread, active_agent: Any, settings: Any,
) -> None:
    settings.LIVEKIT_DELETE_ROOM_ON_END = True  # the default
    for job in (_job_with_its_room(active_agent, "ends-1"), _job_with_its_room(active_agent, "kept-1", delete_room_on_end=False)):
        livekit.room_delete_on_end(job=job)
    settings.LIVEKIT_DELETE_ROOM_ON_END = False
    for job in (_job_with_its_room(active_agent, "kept-2"), _job_with_its_room(active_agent, "ends-2", delete_room_on_end=True)):
        livekit.room_delete_on_end(job=job)
    assert sorted(lk.double.deleted_rooms) == ["ends-1", "ends-2"]  # the job's metadata overrides the setting
    assert sorted(lk.double.rooms) == ["kept-1", "kept-2"]


def test_a_room_that_was_there_before_the_job_outlives_it(lk: LiveKitDoubleThread, active_agent: Any) -> None:
    livekit.room_create("standing-room")
    job = _job_with_its_room(active_agent, "standing-room", delete_room_on_end=True)
    assert job.room["created_by_job"] is False
    livekit.room_delete_on_end(job=job)
    assert "standing-room" in lk.double.rooms and lk.double.deleted_rooms == []


def test_delete_room_on_end_must_be_a_boolean(api_client: Any, active_agent: Any, lk: LiveKitDoubleThread) -> None:
    answer = api_client.post("/api/v1/jobs/", {"agent": active_agent.agent_id, "room": "r",
                                               "metadata": {"delete_room_on_end": "no"}}, format="json")
    assert answer.status_code == 400
    assert answer.json()["metadata"] == ["metadata.delete_room_on_end must be true or false."]
    assert not Job.objects.exists()
