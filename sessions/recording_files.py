"""Reading and deleting stored recordings: the streamed download and the retention sweep."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from controlplane.errors import NotFound
from sessions.models import Recording

log = logging.getLogger(__name__)


CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `Range: bytes=a-b` (or `a-`, `-n`); None when absent or unusable."""
    match = _RANGE.match(header.strip())
    if not match or size == 0 or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end < size else None


def _chunks(handle: Any, remaining: int) -> Iterator[bytes]:
    try:
        while remaining > 0:
            data = handle.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def recording_response(session_id: str, range_header: str = "") -> HttpResponseBase:
    """The file, streamed from its storage in chunks (never read whole); NotFound if none.

    A `Range` request (the <audio> element seeking in a long call) gets a 206 with that slice."""
    recording = Recording.objects.filter(session_id=session_id).first()
    if recording is None:
        raise NotFound(f"session '{session_id}' has no recording")
    try:
        handle = recording.file.open("rb")
        size = recording.file.size
    except FileNotFoundError:
        raise NotFound(f"the recording of session '{session_id}' is missing from its storage") from None
    span = _byte_range(range_header, size) if range_header else None
    response: HttpResponseBase
    if span is None:
        response = FileResponse(handle, content_type=recording.content_type, as_attachment=False,
                                filename=f"{session_id}.wav")
    else:
        start, end = span
        handle.seek(start)
        response = StreamingHttpResponse(_chunks(handle, end - start + 1), status=206,
                                         content_type=recording.content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
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
