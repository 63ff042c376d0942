from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from controlplane.models import ApiKey, hash_key

pytestmark = pytest.mark.django_db


def test_keys_are_stored_hashed() -> None:
    key, raw = ApiKey.generate(name="ci", scopes=["read"])
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.key_hash == hash_key(raw)
    assert raw not in (stored.key_hash, stored.prefix, stored.name)


def test_a_key_authenticates_until_revoked() -> None:
    key, raw = ApiKey.generate(name="ci", scopes=["read"])
    assert ApiKey.authenticate(raw) == key
    key.revoke()
    assert ApiKey.authenticate(raw) is None


def test_a_wrong_key_does_not_authenticate() -> None:
    ApiKey.generate(name="ci", scopes=["read"])
    assert ApiKey.authenticate("cpk_nope_nope") is None


def test_scopes_are_checked_and_admin_implies_all() -> None:
    reader, _ = ApiKey.generate(name="r", scopes=["read"])
    admin, _ = ApiKey.generate(name="a", scopes=["admin"])
    assert reader.has_scope("read") and not reader.has_scope("jobs:write")
    assert admin.has_scope("jobs:write")


def test_unknown_scopes_are_refused() -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as info:
        ApiKey.generate(name="x", scopes=["root"])
    assert "scopes" in info.value.message_dict
    assert not ApiKey.objects.exists()


def test_create_api_key_prints_the_raw_key_alone_on_the_last_line() -> None:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "--name", "deploy", "--scopes", "read,jobs:write", stdout=out, stderr=err)
    raw = out.getvalue().strip().splitlines()[-1]
    key = ApiKey.authenticate(raw)
    assert key is not None and key.name == "deploy" and key.scopes == ["read", "jobs:write"]


def test_create_api_key_names_a_bad_scope() -> None:
    with pytest.raises(CommandError, match="scopes"):
        call_command("create_api_key", "--name", "deploy", "--scopes", "read,everything")
