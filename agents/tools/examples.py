"""Example tools shipped with the control plane (the demo agent uses `get_weather`)."""
from __future__ import annotations

import zlib

from .function_tool import function_tool

_CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "snowy", "foggy")


@function_tool(timeout=5, metadata={"category": "demo", "tags": ["weather"]})
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city, e.g. "Paris".
    """
    # Deterministic, so demos and tests get the same answer every time.
    h = zlib.crc32(city.strip().lower().encode())
    return f"The weather in {city.strip()} is {_CONDITIONS[h % len(_CONDITIONS)]}, {h % 35 - 5}°C."
