"""Sessions: list, live view, replay, and the operator actions (say / message / interrupt / end)."""
from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError, NotFound
from controlplane.scopes import SESSIONS_CONTROL
from dashboard.access import actor_name, scope_required, watcher_required
from dashboard.selectors import session_summary
from sessions.access import user_can_control
from sessions.control import COMMANDS, send_session_command
from sessions.models import LIVE_SESSION_STATUSES, AgentSession, Recording, SessionStatus
from sessions.recording_files import recording_response


@watcher_required
def session_list(request: HttpRequest) -> HttpResponse:
    sessions = AgentSession.objects.select_related("agent")
    status = request.GET.get("status", "")
    if status == "live":
        sessions = sessions.live()
    elif status in SessionStatus.values:
        sessions = sessions.filter(status=status)
    page = Paginator(sessions, 50).get_page(request.GET.get("page"))
    return render(request, "dashboard/sessions.html", {"nav": "sessions", "page": page, "status": status, "statuses": SessionStatus.values})


def _session_context(request: HttpRequest, session_id: str, mode: str) -> dict[str, object]:
    session = get_object_or_404(AgentSession.objects.select_related("agent", "job"), pk=session_id)
    return {
        "nav": "sessions",
        "session": session,
        "mode": mode,
        "is_live": session.status in LIVE_SESSION_STATUSES,
        "can_control": user_can_control(request.user) and session.status in LIVE_SESSION_STATUSES,
        "summary": session_summary(session),
        "recording": Recording.objects.filter(session_id=session.session_id).first(),
    }


@watcher_required
def session_live(request: HttpRequest, session_id: str) -> HttpResponse:
    return render(request, "dashboard/session.html", _session_context(request, session_id, "live"))


@watcher_required
def session_replay(request: HttpRequest, session_id: str) -> HttpResponse:
    return render(request, "dashboard/session.html", _session_context(request, session_id, "replay"))


@watcher_required
def session_recording(request: HttpRequest, session_id: str) -> HttpResponse:
    """The call's audio for the replay page's <audio> element (login, not an API key)."""
    try:
        return recording_response(session_id, request.headers.get("Range", ""))
    except NotFound as exc:
        raise Http404(exc.message) from None


@require_POST
@scope_required(SESSIONS_CONTROL)
def session_action(request: HttpRequest, session_id: str, command: str) -> JsonResponse:
    """Called by the page with fetch + CSRF token; the runtime records an operator_action."""
    if command not in COMMANDS:
        return JsonResponse({"error": f"unknown action '{command}'"}, status=404)
    text = request.POST.get("text")
    try:
        send_session_command(session_id, command, actor=actor_name(request.user), text=text)
    except DomainError as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=exc.status_code)
    return JsonResponse({"ok": True, "command": command}, status=202)
