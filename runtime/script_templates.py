"""The reply templates of the scripted LLM: `str.format` fields plus `!t` for Title Case.

One module for both sides: the config schema checks which fields a template uses when an
agent is saved, the runtime's scripted LLM renders it in a session. Plain Python, no Django.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any


class _Formatter(string.Formatter):
    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "t":
            return str(value).title()
        return super().convert_field(value, conversion)


_fmt = _Formatter()


def template_fields(template: str) -> set[str]:
    """The field names a template uses (raises ValueError for a malformed template)."""
    names: set[str] = set()
    for _, name, _, conversion in _fmt.parse(template):
        if name is None:
            continue
        if conversion not in (None, "r", "s", "a", "t"):
            raise ValueError(f"unknown conversion !{conversion} (use !t for Title Case)")
        names.add(re.split(r"[.\[]", name, maxsplit=1)[0])
    return names


def render(template: str, values: Mapping[str, Any]) -> str:
    return _fmt.vformat(template, (), dict(values))
