"""A second process hosting one session's AudioLink, as a worker does, for the audio socket
tests and bench/audio_path.py: every uplink frame it hears goes straight back down (an echo),
and a frame of all -1 samples makes it clear the downlink (as an interrupted agent does).

    python -m tests.dashboard.audio_peer SESSION_ID   # prints "ready" once listening; stops at EOF
"""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import django
import numpy as np


class Echo:
    """Stands where the runtime session would: LocalTransport.push_audio lands here."""

    def __init__(self, link: Any) -> None:
        self.link = link

    def push_audio(self, data: np.ndarray, sample_rate: int, channels: int = 1) -> None:
        if data.size and bool(np.all(data == -1)):
            self.link.transport.clear_audio()
        else:
            self.link.transport.write_audio(data, sample_rate)


async def main(session_id: str) -> None:
    from sessions.audio_link import AudioLink

    link = AudioLink(session_id)
    link.transport.session = Echo(link)
    link.open()
    assert link.listening is not None
    await link.listening.wait()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    link.close()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()
    asyncio.run(main(sys.argv[1]))
