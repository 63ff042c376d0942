"""Stored session events → delivery rows → Celery tasks, enqueued after the commit.

Runs on the event sink's writer thread after each stored batch (never on the audio path).
Most batches match no subscription and cost a set lookup per event.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from sessions.models import AgentSession, SessionEvent
from webhooks.models import WebhookDelivery
from webhooks.subscriptions import subscriptions
from webhooks.tasks import deliver_webhook

log = logging.getLogger(__name__)
_SESSION_AGENTS_MAX = 4096
_session_agents_lock = threading.Lock()
_session_agents: OrderedDict[str, tuple[int, str]] = OrderedDict()  # session id → (agent pk, agent_id)


def event_payload(row: SessionEvent, agent_id: str) -> dict[str, Any]:
    """The body every receiver gets (Standard Webhooks' recommended `type`/`timestamp`/`data`)."""
    return {
        "type": row.type,
        "timestamp": row.at.isoformat().replace("+00:00", "Z"),
        "session_id": row.session_id,
        "agent_id": agent_id,
        "seq": row.seq,
        "data": row.data,
    }


def _agents_of(session_ids: set[str]) -> dict[str, tuple[int, str]]:
    with _session_agents_lock:
        known = {s: _session_agents[s] for s in session_ids if s in _session_agents}
    missing = [s for s in session_ids if s not in known]
    if missing:
        found = AgentSession.objects.filter(pk__in=missing).values_list("session_id", "agent_id", "agent__agent_id")
        with _session_agents_lock:
            for session_id, agent_pk, agent_id in found:
                known[session_id] = _session_agents[session_id] = (agent_pk, agent_id)
            while len(_session_agents) > _SESSION_AGENTS_MAX:
                _session_agents.popitem(last=False)
    return known


def enqueue_for_stored_events(rows: Sequence[SessionEvent]) -> list[WebhookDelivery]:
    table = subscriptions()
    if not table:
        return []
    matching = [row for row in rows if row.type in table]
    if not matching:
        return []
    agents = _agents_of({row.session_id for row in matching})
    deliveries: list[WebhookDelivery] = []
    for row in matching:
        agent_pk, agent_id = agents.get(row.session_id, (None, ""))
        for sub in table[row.type]:
            if sub.agent_pk is not None and sub.agent_pk != agent_pk:
                continue
            deliveries.append(WebhookDelivery(endpoint_id=sub.endpoint_id, event_type=row.type,
                                              session_id=row.session_id, seq=row.seq,
                                              payload=event_payload(row, agent_id)))
    if not deliveries:
        return []
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(deliveries)
        ids = [str(d.id) for d in deliveries]
        transaction.on_commit(lambda: _send_tasks(ids))
    return deliveries


def _send_tasks(ids: list[str]) -> None:
    for delivery_id in ids:
        try:
            deliver_webhook.apply_async(args=[delivery_id])
        except Exception:  # noqa: BLE001 - the row stays pending; webhooks.requeue_stale re-sends it
            log.exception("webhook delivery %s not enqueued (broker down?)", delivery_id)
