# before any metric exists: multiprocess files named per container and process (see the module)
from controlplane.prometheus_files import install as _install_prometheus_files

_install_prometheus_files()

from controlplane.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
