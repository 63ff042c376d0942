"""The admin for named credentials: values are write-only, hosts one per line."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from agents.models import Credential, allowed_host_problems


class CredentialAdminForm(forms.ModelForm):
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False, strip=True,
        help_text="Write-only: the stored value is never shown. Leave empty to keep it.",
    )
    hosts = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), label="Allowed hosts",
        help_text="One host name per line (api.example.com, or *.example.com for its subdomains). "
                  "The credential is sent to no other host.",
    )

    class Meta:
        model = Credential
        fields = ("name", "description")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["hosts"] = "\n".join(self.instance.allowed_hosts or [])
        else:
            self.fields["value"].required = True

    def clean_hosts(self) -> list[str]:
        hosts = [line.strip().lower() for line in self.cleaned_data.get("hosts", "").splitlines() if line.strip()]
        problems = allowed_host_problems(hosts)
        if problems:
            raise ValidationError(problems)
        return hosts

    def _post_clean(self) -> None:
        self.instance.allowed_hosts = self.cleaned_data.get("hosts", self.instance.allowed_hosts)
        if self.cleaned_data.get("value"):
            self.instance.set_value(self.cleaned_data["value"])
        super()._post_clean()


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialAdminForm
    list_display = ("name", "hosts_shown", "updated_at")
    search_fields = ("name", "description")
    fields = ("name", "value", "hosts", "description")

    @admin.display(description="allowed hosts")
    def hosts_shown(self, obj: Credential) -> str:
        return ", ".join(obj.allowed_hosts or [])

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # configs reference the name: renaming would silently break them
        return ("name",) if obj else ()
