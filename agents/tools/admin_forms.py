"""The admin form of Tool: secret header values are sealed on save and never shown."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from agents.models import Tool

from .errors import ToolDefinitionError, ToolError
from .secrets import redact_headers, seal_headers

HEADERS_HELP = (
    'Header name → value. Give secrets as {"credential": "name"} (a named credential, sent only to '
    'its allowed hosts), {"env": "ENV_VAR"} (read at call time; CREDENTIAL_ENV_ALLOWLIST names only) or '
    '{"secret": "value"} (encrypted at rest); values of secret-looking headers are encrypted '
    'anyway. Stored secrets show as "********": leave them so to keep them.'
)


class ToolAdminForm(forms.ModelForm):
    http_url = forms.URLField(max_length=2000, required=False, assume_scheme="https")

    class Meta:
        model = Tool
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "http_headers" in self.fields:
            self.fields["http_headers"].help_text = HEADERS_HELP
            if self.instance.pk:
                self.initial["http_headers"] = redact_headers(self.instance.http_headers)

    def clean_http_headers(self) -> dict[str, Any]:
        value = self.cleaned_data.get("http_headers") or {}
        previous = Tool.objects.filter(pk=self.instance.pk).values_list("http_headers", flat=True).first() if self.instance.pk else {}
        try:
            return seal_headers(value, previous=previous or {})
        except (ToolDefinitionError, ToolError) as exc:
            raise ValidationError(str(exc)) from None
