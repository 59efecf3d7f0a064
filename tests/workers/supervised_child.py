"""A stand-in child for the supervisor tests (no TensorFlow, starts in a second): registers with
the service database under its ``--device`` label, writes what it was started with (argv and
the device variables of its environment) to ``$SUPERVISED_CHILD_DIR/<pid>.json``, then idles
until SIGTERM/SIGINT, when it marks itself stopped and exits 0.

``--once`` / ``--max-trials`` / ``--exit-when-idle``: exit 0 after registering (it "finished").
``SUPERVISED_CHILD_CRASH_FIRST=1``: the first process of each device exits 3 after registering.
``SUPERVISED_CHILD_IGNORE_TERM=1``: SIGTERM is ignored (to test the parent's second signal).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType

from tuner_service.db import create_db_engine
from tuner_service.repository import Repository
from tuner_service.settings import load_settings
from tuner_service.states import WorkerStatus

ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "CUDA_DEVICE_ORDER",
            "TUNER_DATABASE_URL", "TUNER_GPU_MEMORY_LIMIT_MB")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", required=True)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--max-trials", type=int)
    parser.add_argument("--exit-when-idle", type=float)
    args, rest = parser.parse_known_args()
    out = Path(os.environ["SUPERVISED_CHILD_DIR"])
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if os.environ.get("SUPERVISED_CHILD_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    engine = create_db_engine(load_settings().database_url)
    repo = Repository(engine)
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    repo.register_worker(worker_id=worker_id, host=socket.gethostname(), pid=os.getpid(),
                         device=args.device, info={})
    record = {"pid": os.getpid(), "device": args.device, "argv": sys.argv[1:], "rest": rest,
              "env": {k: os.environ.get(k) for k in ENV_KEYS},
              "affinity": sorted(os.sched_getaffinity(0))}
    tmp = out / f".{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record))
    tmp.rename(out / f"{os.getpid()}.json")  # readers never see half a file

    marker = out / f"crashed-{args.device.replace(':', '_')}"
    if os.environ.get("SUPERVISED_CHILD_CRASH_FIRST") and not marker.exists():
        marker.touch()
        return 3
    if not (args.once or args.max_trials or args.exit_when_idle is not None):
        stop.wait()
    repo.set_worker_status(worker_id, WorkerStatus.STOPPED)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
