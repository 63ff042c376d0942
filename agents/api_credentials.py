"""GET /api/v1/credentials/: the named credentials configs may reference (never their values)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import Credential
from controlplane.api_base import ApiView
from controlplane.scopes import ADMIN


class CredentialSerializer(serializers.ModelSerializer):
    class Meta:
        model = Credential
        fields = ("name", "allowed_hosts", "description", "created_at", "updated_at")
        read_only_fields = fields


class CredentialListView(ApiView):
    """Read-only: values are written in the admin, so an API key never carries them."""

    http_method_names = ["get", "head", "options"]
    write_scope = ADMIN  # no write exists; with this an admin key learns so (405), others get 403

    @extend_schema(responses=CredentialSerializer(many=True), operation_id="credentials_list")
    def get(self, request: Request) -> Response:
        return self.paginate(request, Credential.objects.order_by("name"), CredentialSerializer)
