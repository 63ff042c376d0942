from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.utils import timezone

from controlplane.prepared_statements import prepared_cursor
from controlplane.scopes import ADMIN, ALL_SCOPES
from controlplane.sql_rows import model_from_row, select_columns

KEY_PREFIX = "cpk"


def hash_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def usable(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A bearer key for the REST API. Only its hash is stored; the raw key is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Public part, for telling keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({KEY_PREFIX}_{self.prefix}_…)"

    def clean(self) -> None:
        if not (self.name or "").strip():
            raise ValidationError({"name": "A name is required."})
        if not isinstance(self.scopes, list) or not self.scopes:
            raise ValidationError({"scopes": "Give at least one scope."})
        unknown = [s for s in self.scopes if s not in ALL_SCOPES]
        if unknown:
            raise ValidationError({"scopes": f"Unknown scope(s): {', '.join(map(str, unknown))}. Known: {', '.join(ALL_SCOPES)}."})

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return self.is_active and (scope in self.scopes or ADMIN in self.scopes)

    @classmethod
    def generate(cls, *, name: str, scopes: list[str], created_by: Any = None) -> tuple[ApiKey, str]:
        """Create a key; returns the row and the raw key, which is never stored."""
        prefix = secrets.token_hex(4)
        raw = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        key = cls(name=name, scopes=list(scopes), prefix=prefix, key_hash=hash_key(raw), created_by=created_by)
        key.full_clean()
        key.save()
        return key, raw

    @classmethod
    def authenticate(cls, raw_key: str, companion: AuthCompanion | None = None) -> ApiKey | None:
        """The usable key `raw_key` names, or None. A `companion` read rides along in the
        same statement (its values are set on it when the key is found)."""
        key = _usable_key_by_hash(hash_key(raw_key), companion)
        if key is not None:
            now = timezone.now()
            # Coarse last-used stamp: one write a minute at most per key.
            if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
                cls.objects.filter(pk=key.pk).update(last_used_at=now)
                key.last_used_at = now
        return key

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=self.revoked_at)


class AuthCompanion:
    """A read a view needs anyway, run in the key lookup's statement (one round trip less).

    `expressions` are scalar SQL expressions (subqueries) added to the lookup's SELECT list,
    with their `params`; `values` holds what they gave, or None when no key was found (the
    request is refused before the view runs). The view builds it before authentication
    (`ApiView.auth_companion`); the key lookup itself, its checks and its errors are unchanged.
    """

    def __init__(self, expressions: str, params: list[Any]) -> None:
        self.expressions, self.params = expressions, params
        self.values: tuple[Any, ...] | None = None


@lru_cache(maxsize=8)
def _key_by_hash_sql(vendor: str, expressions: str = "") -> str:
    # written once: every API request looks its key up, and building this query through the
    # ORM cost more than running it (bench/profile_dispatch.py)
    q = connection.ops.quote_name
    extra = f", {expressions}" if expressions else ""
    return (f"SELECT {select_columns(ApiKey, 'k')}{extra} FROM {q(ApiKey._meta.db_table)} k "
            f"WHERE k.{q('key_hash')} = %s AND k.{q('revoked_at')} IS NULL")


def _usable_key_by_hash(key_hash: str, companion: AuthCompanion | None = None) -> ApiKey | None:
    """`ApiKey.objects.usable().filter(key_hash=…).first()` (key_hash is unique), in one written
    statement, with the companion's expressions after the key's columns."""
    expressions, params = (companion.expressions, companion.params) if companion is not None else ("", [])
    with prepared_cursor() as cursor:  # planning it cost more than running it
        cursor.execute(_key_by_hash_sql(connection.vendor, expressions), [*params, key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(ApiKey._meta.concrete_fields)
    if companion is not None:
        companion.values = tuple(row[width:])
    return model_from_row(ApiKey, row[:width])
