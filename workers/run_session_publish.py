"""Send `workers.run_session` to a worker's own queue: Celery's message, pushed straight to Redis.

`app.send_task` spent about 0.75 ms of Python (option merging, routing, the producer pool,
the publish-retry wrapper, kombu's message preparation) around one Redis LPUSH, on every
dispatch: the largest part of a POST /jobs/ (bench/profile_dispatch.py). Here the protocol-2
message is built field for field as

    app.send_task(RUN_SESSION_TASK, args=[job_id], queue=worker_direct(worker_id), ignore_result=True)

builds it (tests/workers/test_run_session_publish.py compares the two, and has a worker run
a job sent this way) and pushed onto the queue's list with a client kombu's own Redis channel
made for this broker (its connection parameters, key prefix and priority-queue names).

Celery's send_task is used instead wherever the message or its side effects could differ:
the broker is not kombu's Redis transport; the configuration changes the message (another
protocol, serializer or compression, sent events, routes, annotations, a default or
inherited priority, the task's own options); something listens to the publish signals; the
first message to each queue in this process (Celery declares the queue then, once per
connection); and a message the Redis client could not push (Celery's publish retry policy
then has its turn; a worker's claim makes a message that got through twice a no-op).
"""
from __future__ import annotations

import base64
import logging
import os
import threading
from functools import lru_cache
from typing import Any

import redis
from celery import signals
from celery.utils.nodenames import WORKER_DIRECT_QUEUE_FORMAT, anon_nodename, worker_direct
from celery.utils.saferepr import saferepr
from kombu.transport.redis import Channel as RedisChannel
from kombu.utils.json import dumps
from kombu.utils.uuid import uuid

from controlplane.celery import app
from workers.redis_command import pooled_command

log = logging.getLogger(__name__)

RUN_SESSION_TASK = "workers.run_session"  # claims a job on the worker and runs it (workers.tasks)

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_SIGNALS = (signals.before_task_publish, signals.after_task_publish, signals.task_sent)
_declared: set[str] = set()  # queues Celery has sent to (and so declared) from this process
_declared_lock = threading.Lock()


def send_run_session(job_id: str, worker_id: str) -> None:
    """Put the job's `workers.run_session` message on `worker_id`'s own queue."""
    # worker_direct(worker_id).name, without building the kombu Queue only send_task needs
    queue_name = WORKER_DIRECT_QUEUE_FORMAT.format(hostname=worker_id)
    # in this order: the fast path opens its channel only once send_task reached the broker
    fast = None
    if queue_name in _declared and not any(s.receivers for s in _SIGNALS) and not _parent_priority():
        fast = _fast_path()
    if fast is None:
        _celery_send(job_id, worker_direct(worker_id))
        return
    task_id = uuid()
    message = run_session_message(job_id, queue_name, task_id=task_id, delivery_tag=uuid())
    try:
        channel, client = fast
        _lpush(client, channel._q_for_pri(queue_name, 0), dumps(message))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("run_session %s: pushing to Redis failed (%s); sending it the Celery way", job_id, exc)
        _celery_send(job_id, worker_direct(worker_id), task_id=task_id)


def _lpush(client: redis.Redis, key: str, payload: str) -> None:
    """`client.lpush(key, payload)` as one command on a connection of the client's pool, without
    redis-py's per-command layers (retry wrapper, response callbacks: ~100 Python calls of each
    POST /api/v1/jobs/), as the rate limit sends its script. A client that prefixes keys
    (kombu's `global_keyprefix`) pushes through its own lpush, which adds the prefix. The pool
    replaces a connection Redis dropped before handing it out; a push that fails on the way
    raises (the caller then sends the Celery way, whose publish retries have their turn)."""
    if type(client) is not redis.Redis:
        client.lpush(key, payload)
        return
    pooled_command(client.connection_pool, "LPUSH", key, payload)


def _celery_send(job_id: str, queue: Any, task_id: str | None = None) -> None:
    app.send_task(RUN_SESSION_TASK, args=[job_id], queue=queue, ignore_result=True, task_id=task_id)
    with _declared_lock:
        if len(_declared) > 10_000:  # a fleet's worth of names; forgetting one costs one slow send
            _declared.clear()
        _declared.add(queue.name)


def run_session_message(job_id: str, queue_name: str, *, task_id: str, delivery_tag: str) -> dict[str, Any]:
    """What kombu's Redis transport pushes for send_task(RUN_SESSION_TASK, args=[job_id],
    queue=<queue_name>, ignore_result=True): Celery's protocol-2 headers and body, kombu's
    envelope (the anonymous exchange: routing key = queue name, priority 0)."""
    args = [job_id]
    root_id, parent_id = task_id, None
    parent = app.current_worker_task
    if parent:  # sent from a task: the same lineage as send_task records
        root_id, parent_id = parent.request.root_id or parent.request.id, parent.request.id
    headers = {
        "lang": "py", "task": RUN_SESSION_TASK, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": root_id,
        "parent_id": parent_id,
        "argsrepr": _argsrepr(args),
        "kwargsrepr": "{}", "origin": _origin(os.getpid()), "ignore_result": True, "replaced_task_nesting": 0,
        "stamped_headers": None, "stamps": {},
    }
    body = dumps((args, {}, _EMBED)).encode()
    return {
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8", "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id, "reply_to": app.thread_oid, "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue_name}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": delivery_tag,
        },
    }


def _argsrepr(args: list[str]) -> str:
    """saferepr(args) as send_task writes it. Of one short printable id that is its repr (a
    test holds the two equal; `_message_is_default` sends nothing this way under a limit that
    would cut it): no stream machinery and no two configuration reads on every dispatch."""
    (job_id,) = args
    if type(job_id) is str and len(job_id) <= _SHORT_ID and job_id.isprintable():
        return repr(args)
    return saferepr(args, app.amqp.argsrepr_maxsize, maxlevels=app.conf.task_repr_maxlevels)


_SHORT_ID = 100  # far below argsrepr_maxsize (1024 by default), where saferepr starts to cut


@lru_cache(maxsize=4)
def _origin(pid: int) -> str:
    return anon_nodename()  # 'gen<pid>@<host>', as send_task writes it


def _parent_priority() -> bool:
    # the task first: outside one (every web dispatch) the setting is not read at all, and a
    # read of Celery's layered configuration cost ~45 Python calls
    return bool(app.current_worker_task and app.conf.task_inherit_parent_priority)


_fast_lock = threading.Lock()
_fast: dict[str, Any] = {}  # broker URL → (kombu's Redis channel, its client), or None: send_task


def _fast_path() -> tuple[RedisChannel, redis.Redis] | None:
    """kombu's Redis channel to the broker and a client of its pool, when the message built
    here is the one send_task would build; None (use send_task) otherwise. Decided once per
    process and broker URL (a broker that could not be reached is asked again next time)."""
    url = app.conf.broker_url
    if url not in _fast:
        with _fast_lock:
            if url not in _fast:
                if not _message_is_default():
                    _fast[url] = None
                else:
                    opened = _open_channel()
                    if opened is not False:
                        _fast[url] = opened
    return _fast.get(url)


def _message_is_default() -> bool:
    conf = app.conf
    task = app.tasks.get(RUN_SESSION_TASK)  # its options would join send_task's
    task_options = {k: v for k, v in (task._get_exec_options() if task is not None else {}).items() if v is not None}
    return (conf.task_protocol == 2 and conf.task_serializer == "json" and not conf.task_compression
            and not conf.task_send_sent_event and not conf.task_routes and not conf.task_annotations
            and conf.task_default_priority is None and conf.task_default_delivery_mode in (2, "persistent")
            and app.amqp.argsrepr_maxsize > _SHORT_ID + 4 and conf.task_repr_maxlevels >= 1  # see _argsrepr
            and task_options in ({}, {"serializer": "json"}))


def _open_channel() -> tuple[RedisChannel, redis.Redis] | None | bool:
    """(channel, client); None when the broker is not kombu's Redis transport; False when it
    could not be reached."""
    connection = app.connection_for_write()
    try:
        channel = connection.default_channel
    except Exception as exc:  # noqa: BLE001 - send_task, with its retries, has this message
        log.warning("run_session: no broker channel (%s); sending with send_task", exc)
        connection.release()
        return False
    if not isinstance(channel, RedisChannel) or channel.priority(0) != 0:
        connection.release()
        return None
    # the client kombu's `_put` makes for each message, made once: it shares the channel's
    # connection pool (thread-safe; reset in a forked child)
    return channel, channel._create_client()
