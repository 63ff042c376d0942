"""Messages are stored and shown as with Django's FallbackStorage (cookie, then session); a
request that never uses them builds no backend (controlplane.message_storage)."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib import messages
from django.contrib.messages.storage import default_storage
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.session import SessionStorage
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from controlplane.message_storage import LazyFallbackStorage


def _request_with_session() -> Any:
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    request = RequestFactory().get("/")
    request.session = SessionStore()
    return request


def test_it_is_the_configured_storage() -> None:
    assert isinstance(default_storage(_request_with_session()), LazyFallbackStorage)


def test_an_unused_storage_builds_no_backend_and_writes_nothing() -> None:
    storage = default_storage(_request_with_session())
    response = HttpResponse()
    assert storage.update(response) is None
    assert "storages" not in storage.__dict__ and not response.cookies


def test_a_message_goes_to_the_cookie_and_comes_back_on_the_next_request() -> None:
    first = _request_with_session()
    first._messages = default_storage(first)
    messages.success(first, "Agent activated.")
    response = HttpResponse()
    first._messages.update(response)
    assert [type(s) for s in first._messages.storages] == [CookieStorage, SessionStorage]
    assert CookieStorage.cookie_name in response.cookies

    second = _request_with_session()
    second.COOKIES[CookieStorage.cookie_name] = response.cookies[CookieStorage.cookie_name].value
    second._messages = default_storage(second)
    assert [str(m) for m in messages.get_messages(second)] == ["Agent activated."]


@pytest.mark.django_db
def test_a_dashboard_action_s_message_shows_on_the_page_it_redirects_to(client: Any, operator: Any,
                                                                       active_agent: Any) -> None:
    client.force_login(operator)
    response = client.post(reverse("dashboard:agent-deactivate", args=[active_agent.agent_id]), follow=True)
    assert response.status_code == 200
    assert f"Agent {active_agent.agent_id} deactivated" in response.content.decode()
