"""Reading and deleting stored recordings: the streamed download and the retention sweep."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.http import FileResponse
from django.utils import timezone

from controlplane.errors import NotFound
from sessions.models import Recording

log = logging.getLogger(__name__)


def recording_response(session_id: str) -> FileResponse:
    """The file, streamed from its storage in chunks (never read whole); NotFound if none."""
    recording = Recording.objects.filter(session_id=session_id).first()
    if recording is None:
        raise NotFound(f"session '{session_id}' has no recording")
    try:
        handle = recording.file.open("rb")
    except FileNotFoundError:
        raise NotFound(f"the recording of session '{session_id}' is missing from its storage") from None
    response = FileResponse(handle, content_type=recording.content_type, as_attachment=False,
                            filename=f"{session_id}.wav")
    response["Cache-Control"] = "private, max-age=300"
    return response


def recordings_purge(*, older_than_days: int | None = None) -> int:
    """Delete recordings (file, then row) older than the retention; 0 days keeps them forever."""
    days = settings.RECORDINGS_RETENTION_DAYS if older_than_days is None else older_than_days
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    for recording in Recording.objects.filter(created_at__lt=cutoff).iterator():
        try:
            recording.file.delete(save=False)
        except Exception:  # noqa: BLE001 - keep the row, so the next sweep tries again
            log.warning("recording file %s not deleted", recording.file.name, exc_info=True)
            continue
        recording.delete()
        deleted += 1
    return deleted
