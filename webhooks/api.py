"""Webhook endpoints API: list/create, detail/update/delete, the delivery log.

Reads need `read`; changes need `webhooks:write`.
"""
from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api_base import ApiView, get_or_404
from controlplane.errors import NotFound
from controlplane.scopes import WEBHOOKS_WRITE
from webhooks.models import WebhookEndpoint
from webhooks.serializers import (
    DeliveryListQuerySerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
)
from webhooks.services import webhook_endpoint_create, webhook_endpoint_update


def _endpoint(webhook_id: str) -> WebhookEndpoint:
    return get_or_404(WebhookEndpoint.objects.select_related("agent"), "webhook", pk=_uuid(webhook_id))


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"webhook '{value}' not found") from None


class WebhookListView(ApiView):
    write_scope = WEBHOOKS_WRITE

    @extend_schema(responses=WebhookEndpointSerializer(many=True), operation_id="webhooks_list")
    def get(self, request: Request) -> Response:
        return self.paginate(request, WebhookEndpoint.objects.select_related("agent").order_by("created_at"),
                             WebhookEndpointSerializer)

    @extend_schema(request=WebhookEndpointCreateSerializer, responses={201: WebhookEndpointCreatedSerializer},
                   operation_id="webhooks_create")
    def post(self, request: Request) -> Response:
        body = WebhookEndpointCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, secret = webhook_endpoint_create(**body.validated_data)
        data = WebhookEndpointCreatedSerializer(endpoint).data
        data["secret"] = secret
        return Response(data, status=status.HTTP_201_CREATED)


class WebhookDetailView(ApiView):
    write_scope = WEBHOOKS_WRITE

    @extend_schema(responses=WebhookEndpointSerializer, operation_id="webhooks_retrieve")
    def get(self, request: Request, webhook_id: str) -> Response:
        return Response(WebhookEndpointSerializer(_endpoint(webhook_id)).data)

    @extend_schema(request=WebhookEndpointUpdateSerializer, responses=WebhookEndpointSerializer,
                   operation_id="webhooks_partial_update")
    def patch(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(webhook_id)
        body = WebhookEndpointUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, **body.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None}, operation_id="webhooks_destroy")
    def delete(self, request: Request, webhook_id: str) -> Response:
        _endpoint(webhook_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListView(ApiView):
    @extend_schema(parameters=[DeliveryListQuerySerializer], responses=WebhookDeliverySerializer(many=True),
                   operation_id="webhooks_deliveries_list")
    def get(self, request: Request, webhook_id: str) -> Response:
        endpoint = _endpoint(webhook_id)
        query = DeliveryListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        deliveries = endpoint.deliveries.order_by("-created_at", "id")
        if "status" in query.validated_data:
            deliveries = deliveries.filter(status=query.validated_data["status"])
        return self.paginate(request, deliveries, WebhookDeliverySerializer)
