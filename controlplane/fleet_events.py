"""Fleet status changes (jobs, workers, sessions) broadcast to `/ws/fleet/` listeners."""
from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

FLEET_GROUP = "fleet"
log = logging.getLogger(__name__)


def publish_fleet_event(kind: str, data: dict[str, Any]) -> None:
    """kind is job / worker / session; data holds at least the id and the new status.

    Best effort: the database is the record, this is the live view. A broadcast failure is
    logged, never raised into the state change that caused it.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "fleet.event", "kind": kind, "at": timezone.now().isoformat(), "data": data}
    try:
        async_to_sync(layer.group_send)(FLEET_GROUP, message)
    except Exception:  # noqa: BLE001
        log.warning("fleet event %s not broadcast", kind, exc_info=True)


async def apublish_fleet_event(kind: str, data: dict[str, Any]) -> None:
    """The same, from code running on an event loop (async_to_sync refuses to run there)."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "fleet.event", "kind": kind, "at": timezone.now().isoformat(), "data": data}
    try:
        await layer.group_send(FLEET_GROUP, message)
    except Exception:  # noqa: BLE001
        log.warning("fleet event %s not broadcast", kind, exc_info=True)
