"""Agent API: CRUD (DELETE → destroyed), activate/deactivate and the version history."""
from __future__ import annotations

from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from agents import services
from agents.models import Agent, AgentVersion
from agents.serializers import (
    AgentCreateSerializer,
    AgentListQuerySerializer,
    AgentSerializer,
    AgentUpdateSerializer,
    AgentVersionSerializer,
)
from controlplane.api_auth import actor_name
from controlplane.api_base import ApiView, get_or_404
from controlplane.errors import Conflict
from controlplane.scopes import AGENTS_WRITE


class AgentListView(ApiView):
    write_scope = AGENTS_WRITE

    @extend_schema(parameters=[AgentListQuerySerializer], responses=AgentSerializer(many=True), operation_id="agents_list")
    def get(self, request: Request) -> Response:
        query = AgentListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        state = query.validated_data.get("state")
        agents = Agent.objects.filter(state=state) if state else Agent.objects.live()
        return self.paginate(request, agents.order_by("agent_id"), AgentSerializer)

    @extend_schema(request=AgentCreateSerializer, responses={201: AgentSerializer}, operation_id="agents_create")
    def post(self, request: Request) -> Response:
        body = AgentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        try:
            agent = services.agent_create(
                agent_id=data.pop("agent_id"), instructions=data.pop("instructions"), actor=actor_name(request), **data
            )
        except IntegrityError:  # lost a race with an identical create
            raise Conflict("an agent with this agent_id already exists", field="agent_id") from None
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailView(ApiView):
    write_scope = AGENTS_WRITE

    @extend_schema(responses=AgentSerializer, operation_id="agents_retrieve")
    def get(self, request: Request, agent_id: str) -> Response:
        return Response(AgentSerializer(get_or_404(Agent.objects, "agent", agent_id=agent_id)).data)

    @extend_schema(request=AgentUpdateSerializer, responses=AgentSerializer, operation_id="agents_update")
    def patch(self, request: Request, agent_id: str) -> Response:
        agent = get_or_404(Agent.objects, "agent", agent_id=agent_id)
        body = AgentUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.agent_update(agent=agent, actor=actor_name(request), **body.validated_data)
        return Response(AgentSerializer(agent).data)

    @extend_schema(request=None, responses=AgentSerializer, operation_id="agents_destroy")
    def delete(self, request: Request, agent_id: str) -> Response:
        agent = get_or_404(Agent.objects, "agent", agent_id=agent_id)
        services.agent_destroy(agent=agent)
        return Response(AgentSerializer(agent).data)


class AgentActivateView(ApiView):
    write_scope = AGENTS_WRITE

    @extend_schema(request=None, responses=AgentSerializer, operation_id="agents_activate")
    def post(self, request: Request, agent_id: str) -> Response:
        agent = get_or_404(Agent.objects, "agent", agent_id=agent_id)
        services.agent_activate(agent=agent)
        return Response(AgentSerializer(agent).data)


class AgentDeactivateView(ApiView):
    write_scope = AGENTS_WRITE

    @extend_schema(request=None, responses=AgentSerializer, operation_id="agents_deactivate")
    def post(self, request: Request, agent_id: str) -> Response:
        agent = get_or_404(Agent.objects, "agent", agent_id=agent_id)
        services.agent_deactivate(agent=agent)
        return Response(AgentSerializer(agent).data)


class AgentVersionListView(ApiView):
    @extend_schema(responses=AgentVersionSerializer(many=True), operation_id="agents_versions_list")
    def get(self, request: Request, agent_id: str) -> Response:
        agent = get_or_404(Agent.objects, "agent", agent_id=agent_id)
        versions = AgentVersion.objects.filter(agent=agent).order_by("-version")
        return self.paginate(request, versions, AgentVersionSerializer)


