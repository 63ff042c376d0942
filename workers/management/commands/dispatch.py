from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.errors import DomainError
from workers.dispatch import job_dispatch
from workers.models import Job


class Command(BaseCommand):
    help = "Dispatch a job (agent session in a room) and optionally wait for it to finish."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent")
        parser.add_argument("--room", required=True)
        parser.add_argument("--metadata", default="{}", help="JSON object")
        parser.add_argument("--priority", type=int, default=5)
        parser.add_argument("--participant-identity", default="")
        parser.add_argument("--transport", choices=["local", "livekit"])
        parser.add_argument("--job-type", default="agent_session")
        parser.add_argument("--wait", action="store_true", help="Wait until the job has finished.")
        parser.add_argument("--timeout", type=float, default=3600)

    def handle(self, *args: Any, **o: Any) -> None:
        try:
            metadata = json.loads(o["metadata"])
            job = job_dispatch(agent_id=o["agent"], room=o["room"], metadata=metadata, priority=o["priority"],
                               participant_identity=o["participant_identity"], transport=o["transport"], job_type=o["job_type"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--metadata is not JSON: {exc}") from None
        except DomainError as exc:
            raise CommandError(f"{exc.field or 'job'}: {exc.message}") from None
        self.stdout.write(f"{job.job_id} {job.status}")
        if not o["wait"]:
            return
        deadline = time.monotonic() + o["timeout"]
        last = job.status
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status != last:
                self.stdout.write(f"{job.job_id} {job.status}" + (f" on {job.assigned_worker_id}" if job.assigned_worker_id else ""))
                last = job.status
            if job.is_finished:
                if job.failure_reason:
                    self.stdout.write(f"reason: {job.failure_reason}")
                if job.status != "completed":
                    raise CommandError(f"job {job.status}")
                return
            time.sleep(0.2)
        raise CommandError("timed out waiting for the job")


__all__ = ["Command", "Job"]
