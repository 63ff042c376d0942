"""Sessions API: list and detail, the persisted event log, and operator actions."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api_auth import actor_name
from controlplane.api_base import ApiView, get_or_404
from controlplane.scopes import SESSIONS_CONTROL
from sessions.control import send_session_command
from sessions.models import AgentSession, SessionEvent
from sessions.recording_files import recording_response
from sessions.serializers import (
    CommandAcceptedSerializer,
    EmptyCommandSerializer,
    EventListQuerySerializer,
    MessageCommandSerializer,
    SayCommandSerializer,
    SessionDetailSerializer,
    SessionEventSerializer,
    SessionListQuerySerializer,
    SessionSerializer,
)


def _sessions() -> Any:
    return AgentSession.objects.select_related("agent")


class SessionListView(ApiView):
    @extend_schema(parameters=[SessionListQuerySerializer], responses=SessionSerializer(many=True), operation_id="sessions_list")
    def get(self, request: Request) -> Response:
        query = SessionListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        sessions = _sessions().order_by("-started_at", "session_id")
        if filters.get("live"):
            sessions = sessions.live()
        elif filters.get("live") is False:
            sessions = sessions.exclude(pk__in=AgentSession.objects.live().values("pk"))
        if "status" in filters:
            sessions = sessions.filter(status=filters["status"])
        if "agent" in filters:
            sessions = sessions.filter(agent__agent_id=filters["agent"])
        if "job" in filters:
            sessions = sessions.filter(job_id=filters["job"])
        return self.paginate(request, sessions, SessionSerializer)


class SessionDetailView(ApiView):
    @extend_schema(responses=SessionDetailSerializer, operation_id="sessions_retrieve")
    def get(self, request: Request, session_id: str) -> Response:
        session = get_or_404(_sessions().prefetch_related("participants"), "session", session_id=session_id)
        return Response(SessionDetailSerializer(session).data)


class SessionEventListView(ApiView):
    @extend_schema(parameters=[EventListQuerySerializer], responses=SessionEventSerializer(many=True), operation_id="sessions_events_list")
    def get(self, request: Request, session_id: str) -> Response:
        session = get_or_404(AgentSession.objects, "session", session_id=session_id)
        query = EventListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        events = SessionEvent.objects.filter(session=session, seq__gt=query.validated_data["after_seq"])
        if "type" in query.validated_data:
            events = events.filter(type=query.validated_data["type"])
        return self.paginate(request, events.order_by("seq"), SessionEventSerializer)


class SessionRecordingView(ApiView):
    @extend_schema(responses={(200, "audio/wav"): bytes}, operation_id="sessions_recording")
    def get(self, request: Request, session_id: str) -> Any:
        session = get_or_404(AgentSession.objects, "session", session_id=session_id)
        return recording_response(session.session_id, request.headers.get("Range", ""))


class _SessionCommandView(ApiView):
    """POST an operator action; the session's host carries it out (202: accepted, not done)."""

    write_scope = SESSIONS_CONTROL
    command = ""
    body_serializer: type[serializers.Serializer] = EmptyCommandSerializer

    def send(self, request: Request, session_id: str) -> Response:
        session = get_or_404(AgentSession.objects, "session", session_id=session_id)
        body = self.body_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        text = body.validated_data.get("text")
        send_session_command(session.session_id, self.command, actor=actor_name(request), text=text)
        accepted = {"session_id": session.session_id, "command": self.command, "status": "accepted"}
        return Response(accepted, status=status.HTTP_202_ACCEPTED)


class SessionSayView(_SessionCommandView):
    command, body_serializer = "say", SayCommandSerializer

    @extend_schema(request=SayCommandSerializer, responses={202: CommandAcceptedSerializer}, operation_id="sessions_say")
    def post(self, request: Request, session_id: str) -> Response:
        return self.send(request, session_id)


class SessionInterruptView(_SessionCommandView):
    command, body_serializer = "interrupt", EmptyCommandSerializer

    @extend_schema(request=EmptyCommandSerializer, responses={202: CommandAcceptedSerializer}, operation_id="sessions_interrupt")
    def post(self, request: Request, session_id: str) -> Response:
        return self.send(request, session_id)


class SessionEndView(_SessionCommandView):
    command, body_serializer = "end", EmptyCommandSerializer

    @extend_schema(request=EmptyCommandSerializer, responses={202: CommandAcceptedSerializer}, operation_id="sessions_end")
    def post(self, request: Request, session_id: str) -> Response:
        return self.send(request, session_id)


class SessionMessageView(_SessionCommandView):
    command, body_serializer = "message", MessageCommandSerializer

    @extend_schema(request=MessageCommandSerializer, responses={202: CommandAcceptedSerializer}, operation_id="sessions_messages")
    def post(self, request: Request, session_id: str) -> Response:
        return self.send(request, session_id)


class SessionPauseView(_SessionCommandView):
    """The agent stops listening and speaking (user audio and text dropped, its output held)."""

    command, body_serializer = "pause", EmptyCommandSerializer

    @extend_schema(request=EmptyCommandSerializer, responses={202: CommandAcceptedSerializer}, operation_id="sessions_pause")
    def post(self, request: Request, session_id: str) -> Response:
        return self.send(request, session_id)


class SessionResumeView(_SessionCommandView):
    command, body_serializer = "resume", EmptyCommandSerializer

    @extend_schema(request=EmptyCommandSerializer, responses={202: CommandAcceptedSerializer}, operation_id="sessions_resume")
    def post(self, request: Request, session_id: str) -> Response:
        return self.send(request, session_id)
