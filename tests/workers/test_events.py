"""Fleet broadcasts leave the hot path but still reach /ws/fleet/ listeners, in order."""
from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer
from django.conf import settings

from controlplane.fleet_events import FLEET_GROUP
from workers import events


def test_published_events_reach_fleet_listeners_in_order() -> None:
    async def listen() -> list[dict[str, Any]]:
        # a layer instance of our own, as a web process listening on /ws/fleet/ has
        layer = RedisChannelLayer(hosts=[settings.REDIS_URL])
        channel = await layer.new_channel()
        await layer.group_add(FLEET_GROUP, channel)
        try:
            await asyncio.to_thread(lambda: [events.publish("job", {"job_id": "job_1", "status": s}) for s in ("pending", "assigned", "running")])
            assert await asyncio.to_thread(events.flush, 10)
            return [await asyncio.wait_for(layer.receive(channel), 10) for _ in range(3)]
        finally:
            await layer.group_discard(FLEET_GROUP, channel)

    received = asyncio.run(listen())
    assert [m["data"]["status"] for m in received] == ["pending", "assigned", "running"]
    assert all(m["type"] == "fleet.event" and m["kind"] == "job" for m in received)
