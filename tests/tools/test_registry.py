from __future__ import annotations

import sys
import types

import pytest

from agents.tools import RegistryEvent, ToolRegistry, function_tool, registry
from agents.tools.registry import ToolRegistrationError


def make_tool(name: str, **meta):
    def fn(city: str) -> str:
        return city

    fn.__doc__ = f"Tool {name}."
    fn.__name__ = name
    return function_tool(fn, register=False, metadata=meta)


def test_register_lookup_and_deregister(fresh_registry: ToolRegistry) -> None:
    tool = make_tool("alpha")
    fresh_registry.register(tool)
    assert fresh_registry.get("alpha") is tool
    assert "alpha" in fresh_registry and fresh_registry.names() == ["alpha"]
    assert fresh_registry.deregister("alpha") is True
    assert fresh_registry.get("alpha") is None
    assert fresh_registry.deregister("alpha") is False


def test_every_change_emits_an_event(fresh_registry: ToolRegistry) -> None:
    seen: list[RegistryEvent] = []
    unsubscribe = fresh_registry.subscribe(seen.append)
    tool = make_tool("beta")
    fresh_registry.register(tool)
    fresh_registry.register(tool)
    fresh_registry.deregister("beta")
    unsubscribe()
    fresh_registry.register(tool)
    assert [(e.action, e.name) for e in seen] == [
        ("registered", "beta"), ("replaced", "beta"), ("deregistered", "beta"),
    ]


def test_a_failing_listener_does_not_break_registration(fresh_registry: ToolRegistry) -> None:
    def boom(event: RegistryEvent) -> None:
        raise RuntimeError("listener bug")

    fresh_registry.subscribe(boom)
    fresh_registry.register(make_tool("gamma"))
    assert fresh_registry.get("gamma") is not None


def test_names_are_unique_across_different_functions(fresh_registry: ToolRegistry) -> None:
    fresh_registry.register(make_tool("dup"))

    @function_tool(name="dup", register=False)
    def other(x: int) -> int:
        """Another function."""
        return x

    with pytest.raises(ToolRegistrationError, match="already registered"):
        fresh_registry.register(other)
    fresh_registry.register(other, replace=True)
    assert fresh_registry.get("dup") is other


def test_search_by_metadata_and_text(fresh_registry: ToolRegistry) -> None:
    fresh_registry.register(make_tool("w1", category="weather", tags=["sky", "rain"]))
    fresh_registry.register(make_tool("w2", category="weather", tags=["sun"]))
    fresh_registry.register(make_tool("m1", category="maps"))
    assert [t.name for t in fresh_registry.search(category="weather")] == ["w1", "w2"]
    assert [t.name for t in fresh_registry.search(tags="rain")] == ["w1"]
    assert [t.name for t in fresh_registry.search("tool m1")] == ["m1"]
    assert fresh_registry.search(category="none") == []


def test_validate_reports_a_tool_that_does_not_resolve(fresh_registry: ToolRegistry) -> None:
    tool = make_tool("ghost")
    tool.function = "not_there"
    fresh_registry.register(tool)  # registering cannot check (the module may still be importing)
    assert "does not resolve" in " ".join(fresh_registry.validate_all()["ghost"])


def test_discovery_imports_installed_apps_tools_and_setting_modules(
    fresh_registry: ToolRegistry, settings
) -> None:
    module = types.ModuleType("tests_tools_extra_module")
    sys.modules["tests_tools_extra_module"] = module
    settings.TOOL_MODULES = ["tests_tools_extra_module"]
    try:
        imported = fresh_registry.discover()
    finally:
        del sys.modules["tests_tools_extra_module"]
    assert "agents.tools" in imported
    assert imported[-1] == "tests_tools_extra_module"


def test_the_default_registry_has_the_example_tool() -> None:
    tool = registry.get("get_weather")
    assert tool is not None
    assert tool("Paris") == tool("Paris") and "Paris" in tool("Paris")
    assert registry.validate(tool, check_import=True) == []


def test_a_broken_tool_module_is_reported_not_fatal(fresh_registry: ToolRegistry, settings) -> None:
    settings.TOOL_MODULES = ["tests_tools_module_that_does_not_exist"]
    imported = fresh_registry.discover()
    assert "agents.tools" in imported
    assert "ModuleNotFoundError" in fresh_registry.import_errors["tests_tools_module_that_does_not_exist"]
