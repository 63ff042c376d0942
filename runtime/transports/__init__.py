from .local import LocalTransport

__all__ = ["LocalTransport"]
