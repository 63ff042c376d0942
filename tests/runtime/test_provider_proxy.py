"""The OpenAI providers honour HTTP(S)_PROXY and NO_PROXY from the environment, as the SDK's
httpx transport did (runtime.providers.openai_http looks the proxy up once per pool)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio


async def test_a_request_goes_through_the_proxy_the_environment_names(make_session, openai_double, recorder,
                                                                       monkeypatch):
    # the double stands in for the proxy: it gets the absolute URL of a host nobody resolves
    monkeypatch.setenv("HTTP_PROXY", openai_double.base_url.rsplit("/v1", 1)[0])
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    openai_double.chat.push("Through the proxy.")
    session = make_session(text_only=True, llm={"base_url": "http://llm.invalid/v1"})
    await session.start()
    session.push_text("hello")
    reply = await recorder.wait_for("response_generated")
    assert reply.text == "Through the proxy."
    assert [path for path, _ in openai_double.arrivals] == ["http://llm.invalid/v1/chat/completions"]
