"""Jobs and workers API: dispatch (idempotent, back-pressured), follow, cancel; the fleet."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api_auth import actor_name
from controlplane.api_base import ApiView, api_key_of, get_or_404, json_body_early
from controlplane.scopes import JOBS_WRITE, WORKERS_WRITE
from workers.dispatch import AgentAndFleetRead, agent_and_fleet_read, job_cancel_request, job_create
from workers.models import Job, Worker
from workers.registration import worker_drain
from workers.serializers import (
    IDEMPOTENCY_HEADER,
    IdempotencyKeySerializer,
    JobCreateSerializer,
    JobListQuerySerializer,
    JobSerializer,
    WorkerListQuerySerializer,
    WorkerSerializer,
)

_IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False,
    description="Same key and body → the same job (200, no second dispatch); same key, other body → 409.",
)


def _jobs() -> Any:
    return Job.objects.select_related("agent", "session")


def _agent_named_in(request: Request) -> Any:
    """The `agent` of a JSON body, read from the raw bytes without DRF's parser (whose errors
    must come only after authentication, from `request.data`); None when there is none."""
    if request.method != "POST" or request.content_type.split(";")[0].strip() != "application/json":
        return None
    try:
        body = json_body_early(request)  # decoded once: request.data is this value
    except Exception:  # noqa: BLE001 - malformed, too large, …: DRF's parser reports it, in its turn
        return None
    return body.get("agent") if isinstance(body, dict) else None


class JobListView(ApiView):
    write_scope = JOBS_WRITE
    prefetched: AgentAndFleetRead | None = None

    def auth_companion(self, request: Request) -> AgentAndFleetRead | None:
        """A dispatch reads its agent and the fleet anyway: with the API key, in one statement."""
        self.prefetched = agent_and_fleet_read(_agent_named_in(request))
        return self.prefetched

    @extend_schema(parameters=[JobListQuerySerializer], responses=JobSerializer(many=True), operation_id="jobs_list")
    def get(self, request: Request) -> Response:
        query = JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        jobs = _jobs().order_by("-created_at", "job_id")
        if "status" in query.validated_data:
            jobs = jobs.filter(status=query.validated_data["status"])
        if "agent" in query.validated_data:
            jobs = jobs.filter(agent__agent_id=query.validated_data["agent"])
        return self.paginate(request, jobs, JobSerializer)

    @extend_schema(
        request=JobCreateSerializer,
        parameters=[_IDEMPOTENCY_PARAMETER],
        responses={
            201: JobSerializer,
            200: OpenApiResponse(JobSerializer, description="Replay of an earlier request with the same Idempotency-Key."),
            404: OpenApiResponse(description="Unknown agent."),
            409: OpenApiResponse(description="Agent not active, or Idempotency-Key reused with another body."),
            429: OpenApiResponse(description="Queue full or rate limit reached; see Retry-After."),
        },
        operation_id="jobs_create",
    )
    def post(self, request: Request) -> Response:
        idempotency_key = IdempotencyKeySerializer.from_request(request)
        body = JobCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = job_create(body.validated_data, idempotency_key=idempotency_key, api_key=api_key_of(request),
                         prefetched=self.prefetched)
        if not job.created:  # a replay: the earlier job as it is now (it may have a session by now)
            return Response(JobSerializer(_jobs().get(pk=job.pk)).data, status=status.HTTP_200_OK)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)  # fresh from the INSERT: no re-read


class JobDetailView(ApiView):
    @extend_schema(responses=JobSerializer, operation_id="jobs_retrieve")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(JobSerializer(get_or_404(_jobs(), "job", job_id=job_id)).data)


class JobCancelView(ApiView):
    write_scope = JOBS_WRITE

    @extend_schema(request=None, responses=JobSerializer, operation_id="jobs_cancel")
    def post(self, request: Request, job_id: str) -> Response:
        job = get_or_404(_jobs(), "job", job_id=job_id)
        job_cancel_request(job_id=job.job_id, actor=actor_name(request))
        return Response(JobSerializer(_jobs().get(pk=job.pk)).data)


class WorkerListView(ApiView):
    @extend_schema(parameters=[WorkerListQuerySerializer], responses=WorkerSerializer(many=True), operation_id="workers_list")
    def get(self, request: Request) -> Response:
        query = WorkerListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        workers = Worker.objects.order_by("worker_id")
        if "status" in query.validated_data:
            workers = workers.filter(status=query.validated_data["status"])
        return self.paginate(request, workers, WorkerSerializer)


class WorkerDrainView(ApiView):
    write_scope = WORKERS_WRITE

    @extend_schema(request=None, responses={202: WorkerSerializer}, operation_id="workers_drain")
    def post(self, request: Request, worker_id: str) -> Response:
        worker = get_or_404(Worker.objects, "worker", worker_id=worker_id)
        drained = worker_drain(worker=worker, reason=f"drain requested by {actor_name(request)}") or worker
        return Response(WorkerSerializer(drained).data, status=status.HTTP_202_ACCEPTED)
