"""django.contrib.messages' default storage (a cookie, then the session), its two backends made
on first use.

MessageMiddleware gives every request a storage; Django's FallbackStorage builds both backends
at once, and the cookie one derives its signer (~35 Python calls) for each request, though only
the dashboard's and the admin's pages ever add or show a message: an API request never does.
A storage nobody used writes nothing on the way out (BaseStorage.update), so those requests
now build neither backend; a request that does use messages gets the same two, as before.
"""
from __future__ import annotations

from typing import Any

from django.contrib.messages.storage.base import BaseStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.utils.functional import cached_property


class LazyFallbackStorage(FallbackStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        BaseStorage.__init__(self, *args, **kwargs)  # not FallbackStorage's: it builds the backends
        self._backend_arguments = (args, kwargs)
        self._used_storages = set()

    @cached_property
    def storages(self) -> list[BaseStorage]:  # type: ignore[override]
        args, kwargs = self._backend_arguments
        return [storage_class(*args, **kwargs) for storage_class in self.storage_classes]
