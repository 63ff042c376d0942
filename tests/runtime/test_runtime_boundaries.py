"""STYLE.md 10: the runtime is plain asyncio + numpy; launch keeps its Django imports out too."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return set(out.stdout.split())


def test_the_runtime_imports_nothing_from_django():
    mods = _loaded_modules("import runtime, runtime.transports.livekit, "
                           "runtime.providers.openai, runtime.events")
    assert not {m for m in mods if m == "django" or m.startswith("django.")}


def test_no_runtime_source_imports_django_even_lazily():
    import re

    pattern = re.compile(r"^\s*(import|from)\s+(django|channels|celery|asgiref)\b", re.MULTILINE)
    for path in (ROOT / "sessions" / "runtime").rglob("*.py"):
        assert not pattern.search(path.read_text()), path


def test_launch_is_importable_without_django():
    mods = _loaded_modules("import sessions.launch")
    assert not {m for m in mods if m.startswith("django")}
