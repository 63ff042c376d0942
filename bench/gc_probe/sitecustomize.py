"""bench/capacity.py --gc-pauses: put on the worker's PYTHONPATH, this records every cycle
collection's pause in the worker process (runtime.gc_policy.GCPauses) and rewrites
$CAPACITY_GC_PAUSES_FILE as JSON every second, for the bench to diff per round;
$CAPACITY_GC_YOUNG overrides runtime.gc_policy.YOUNG_THRESHOLD."""
import os
import sys

_path = os.environ.get("CAPACITY_GC_PAUSES_FILE")
if _path and "celery" in getattr(sys, "orig_argv", sys.argv):  # the worker (manage.py start execs celery)
    import json
    import threading
    import time

    sys.path.insert(0, os.environ.get("CAPACITY_ROOT", "."))
    import runtime.gc_policy
    from runtime.gc_policy import GCPauses

    if os.environ.get("CAPACITY_GC_YOUNG"):  # --gc-young: compare thresholds (read when the session loop starts)
        runtime.gc_policy.YOUNG_THRESHOLD = int(os.environ["CAPACITY_GC_YOUNG"])
    _pauses = GCPauses().install()

    def _dump() -> None:
        while True:
            time.sleep(1.0)
            tmp = _path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(_pauses.as_dict(), f)
            os.replace(tmp, _path)

    threading.Thread(target=_dump, name="gc-pauses-dump", daemon=True).start()
