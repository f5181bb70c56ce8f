"""Request recording in the sync's reader process (plexcache/plex/reader.py), for
``worker.py sync --record``: the worker puts this folder on the child's PYTHONPATH and
names a file in BENCH_RECORD_CHILD; the child's requests are written there when it exits."""

import os

if os.environ.get("BENCH_RECORD_CHILD"):
    import atexit
    import json
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from worker import Recorder

    _recorder = Recorder()

    def _dump() -> None:
        with open(f"{os.environ['BENCH_RECORD_CHILD']}.{os.getpid()}", "w") as f:
            for entry in _recorder.entries:
                f.write(json.dumps(entry) + "\n")

    atexit.register(_dump)
