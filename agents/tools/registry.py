"""In-process registry of tools: discovery, registration, lookup, search, validation."""
from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol

from django.apps import apps
from django.conf import settings

from .errors import ToolDefinitionError
from .schema import validate_function_schema, validate_timeout_ms

logger = logging.getLogger("agents.tools")


class ToolLike(Protocol):
    name: str
    description: str
    kind: str
    metadata: dict[str, Any]
    timeout_ms: int | None

    def openai_schema(self, strict: bool = False) -> dict[str, Any]: ...
    def function_schema(self, strict: bool = False) -> dict[str, Any]: ...
    def parse_arguments(self, raw: Any) -> dict[str, Any]: ...
    async def run(self, kwargs: dict[str, Any], ctx: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    action: str  # "registered" | "replaced" | "deregistered"
    name: str
    tool: Any


class ToolRegistrationError(ToolDefinitionError):
    pass


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, ToolLike] = {}
        self._listeners: list[Callable[[RegistryEvent], None]] = []
        self._lock = threading.RLock()
        self._discovered = False
        self.import_errors: dict[str, str] = {}  # module → error, from the last discovery

    # -- changes ----------------------------------------------------------------------

    def register(self, tool: ToolLike, *, replace: bool = False) -> ToolLike:
        problems = self.validate(tool)
        if problems:
            raise ToolRegistrationError(f"tool {getattr(tool, 'name', '?')!r}: " + "; ".join(problems))
        with self._lock:
            old = self._tools.get(tool.name)
            if old is not None and old is not tool and not replace and not _same_origin(old, tool):
                raise ToolRegistrationError(
                    f"a different tool named {tool.name!r} is already registered "
                    f"({_origin(old)}); names are unique"
                )
            self._tools[tool.name] = tool
        self._emit(RegistryEvent("replaced" if old is not None else "registered", tool.name, tool))
        return tool

    def deregister(self, name: str) -> bool:
        with self._lock:
            tool = self._tools.pop(name, None)
        if tool is None:
            return False
        self._emit(RegistryEvent("deregistered", name, tool))
        return True

    def subscribe(self, listener: Callable[[RegistryEvent], None]) -> Callable[[], None]:
        """Call `listener` on every change; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: RegistryEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("tool registry listener failed on %s %s", event.action, event.name)

    # -- reads ------------------------------------------------------------------------

    def get(self, name: str) -> ToolLike | None:
        tool = self._tools.get(name)
        if tool is None and not self._discovered:
            self.discover()
            tool = self._tools.get(name)
        return tool

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[ToolLike]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def all(self) -> list[ToolLike]:
        with self._lock:
            return [self._tools[n] for n in sorted(self._tools)]

    def search(self, text: str | None = None, **metadata: Any) -> list[ToolLike]:
        """Tools whose metadata has every given key=value (a list value matches if it
        contains the wanted value) and whose name/description contains `text`."""
        found = []
        for tool in self.all():
            if text and text.lower() not in f"{tool.name} {tool.description}".lower():
                continue
            if all(_meta_matches(tool.metadata.get(k, _MISSING), v) for k, v in metadata.items()):
                found.append(tool)
        return found

    # -- validation -------------------------------------------------------------------

    def validate(self, tool: ToolLike, *, check_import: bool = False) -> list[str]:
        """Problems with `tool`; `check_import` also checks module.function resolves to it
        (not possible while the module is still being imported)."""
        problems: list[str] = []
        try:
            schema = tool.function_schema()
        except Exception as exc:
            return [f"schema cannot be built: {exc}"]
        problems += validate_function_schema(schema)
        if getattr(tool, "timeout_ms", None) is not None:
            try:
                validate_timeout_ms(tool.timeout_ms)
            except ToolDefinitionError as exc:
                problems.append(str(exc))
        fn = getattr(tool, "fn", None)
        if check_import and getattr(tool, "kind", "") == "python" and fn is not None:
            module, qualname = getattr(tool, "module", ""), getattr(tool, "function", "")
            if "<locals>" not in qualname and module and not _resolves_to(module, qualname, tool):
                problems.append(f"{module}.{qualname} does not resolve to this tool")
        return problems

    def validate_all(self) -> dict[str, list[str]]:
        return {t.name: p for t in self.all() if (p := self.validate(t, check_import=True))}

    # -- discovery --------------------------------------------------------------------

    def discover(self, extra_modules: Iterable[str] | None = None) -> list[str]:
        """Import every installed app's `tools` module and the modules in
        `settings.TOOL_MODULES` (plus `extra_modules`). Returns the modules imported."""
        self._discovered = True
        self.import_errors = {}
        imported: list[str] = []
        modules: list[str] = list(extra_modules or [])
        try:
            if apps.ready:
                for config in apps.get_app_configs():
                    name = f"{config.name}.tools"
                    if importlib.util.find_spec(config.name) and _has_submodule(config.name, "tools"):
                        modules.insert(0, name)
                modules += list(getattr(settings, "TOOL_MODULES", []) or [])
        except ImportError:  # Django not installed or not configured: explicit modules only
            pass
        except Exception as exc:  # settings not configured
            logger.debug("tool discovery without Django: %s", exc)
        for mod in dict.fromkeys(modules):
            try:
                importlib.import_module(mod)
            except Exception as exc:  # one broken module must not hide every other tool
                logger.exception("tool module %s failed to import", mod)
                self.import_errors[mod] = f"{type(exc).__name__}: {exc}"
                continue
            imported.append(mod)
        return imported

    def ensure_discovered(self) -> None:
        if not self._discovered:
            self.discover()


_MISSING = object()


def _meta_matches(have: Any, want: Any) -> bool:
    if have is _MISSING:
        return False
    if isinstance(have, (list, tuple, set)) and not isinstance(want, (list, tuple, set)):
        return want in have
    return bool(have == want)


def _origin(tool: Any) -> str:
    return f"{getattr(tool, 'module', '?')}.{getattr(tool, 'function', '?')}"


def _same_origin(a: Any, b: Any) -> bool:
    # Re-importing a module (autoreload, tests) defines the same tool again.
    return getattr(a, "kind", "") == getattr(b, "kind", "") == "python" and _origin(a) == _origin(b)


def _has_submodule(package: str, sub: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.{sub}") is not None
    except (ImportError, ValueError):
        return False


def _resolves_to(module: str, qualname: str, tool: Any) -> bool:
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    return obj is tool or getattr(obj, "fn", None) is getattr(tool, "fn", None)


registry = ToolRegistry()
