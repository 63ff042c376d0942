"""Tools API: list/create (HTTP tools), detail, update and delete, and a test call."""
from __future__ import annotations

import dataclasses

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import Tool
from controlplane.api_base import ApiView, get_or_404
from controlplane.scopes import TOOLS_WRITE

from . import services as tool_services
from .serializers import (
    HttpToolCreateSerializer,
    ToolListQuerySerializer,
    ToolResultSerializer,
    ToolSerializer,
    ToolTestSerializer,
    ToolUpdateSerializer,
)
from .sync import ensure_tools_synced


class ToolListView(ApiView):
    write_scope = TOOLS_WRITE

    @extend_schema(parameters=[ToolListQuerySerializer], responses=ToolSerializer(many=True), operation_id="tools_list")
    def get(self, request: Request) -> Response:
        ensure_tools_synced()
        query = ToolListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        tools = Tool.objects.all()
        for field in ("kind", "execution", "enabled"):
            if q.get(field) is not None:
                tools = tools.filter(**{field: q[field]})
        if q.get("q"):
            tools = tools.filter(Q(name__icontains=q["q"]) | Q(description__icontains=q["q"]))
        return self.paginate(request, tools.order_by("name"), ToolSerializer)

    @extend_schema(request=HttpToolCreateSerializer, responses={201: ToolSerializer}, operation_id="tools_create")
    def post(self, request: Request) -> Response:
        body = HttpToolCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tool = tool_services.tool_create_http(**body.validated_data)
        return Response(ToolSerializer(tool).data, status=status.HTTP_201_CREATED)


class ToolDetailView(ApiView):
    write_scope = TOOLS_WRITE

    @extend_schema(responses=ToolSerializer, operation_id="tools_retrieve")
    def get(self, request: Request, name: str) -> Response:
        ensure_tools_synced()
        return Response(ToolSerializer(get_or_404(Tool.objects, "tool", name=name)).data)

    @extend_schema(request=ToolUpdateSerializer, responses=ToolSerializer, operation_id="tools_partial_update")
    def patch(self, request: Request, name: str) -> Response:
        ensure_tools_synced()
        tool = get_or_404(Tool.objects, "tool", name=name)
        body = ToolUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tool = tool_services.tool_update(tool=tool, **body.validated_data)
        return Response(ToolSerializer(tool).data)

    @extend_schema(responses={204: None}, operation_id="tools_destroy")
    def delete(self, request: Request, name: str) -> Response:
        ensure_tools_synced()
        tool_services.tool_delete(tool=get_or_404(Tool.objects, "tool", name=name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ToolTestView(ApiView):
    write_scope = TOOLS_WRITE

    @extend_schema(request=ToolTestSerializer, responses=ToolResultSerializer, operation_id="tools_test")
    def post(self, request: Request, name: str) -> Response:
        ensure_tools_synced()
        tool = get_or_404(Tool.objects, "tool", name=name)
        body = ToolTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = tool_services.tool_test(tool=tool, **body.validated_data)
        return Response(ToolResultSerializer(dataclasses.asdict(result)).data)
