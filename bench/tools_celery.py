"""The tool bench/tools.py runs through a Celery worker (loaded there via TOOL_MODULES)."""
from agents.tools import function_tool


@function_tool(execution="celery")
def bench_echo_celery(text: str) -> str:
    """Echo (in the worker)."""
    return text
