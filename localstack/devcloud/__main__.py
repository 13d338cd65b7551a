"""`python -m devcloud`: run the local platform in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time

from devcloud.cloud import LocalCloud, LocalConfig
from devcloud.seed import DEMO_PASSWORD


def banner(cloud: LocalCloud, seconds: float) -> str:
    assert cloud.gateway_server is not None
    width = max(len(k) for k in cloud.urls())
    lines = [f"  {name.ljust(width)}  {url}" for name, url in cloud.urls().items()]
    return "\n".join(
        [
            "",
            f"DotMac local cloud is up in {seconds:.1f}s "
            f"({cloud.gateway_server.gateway.route_count()} routes, "
            f"{len(cloud.pollers)} queue pollers, stage {cloud.config.stage})",
            *lines,
            *(
                [f"  demo sign-in  tenant abc-corp, john.smith@abc-corp.example / {DEMO_PASSWORD}"]
                if cloud.config.seed
                else []
            ),
            "  Ctrl-C to stop (drains in-flight requests, then exits 0)",
            "",
        ]
    )


def main() -> int:
    started = time.perf_counter()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cloud = LocalCloud(LocalConfig.from_env())
    cloud.start()
    # The emulator's state and the seed are a large heap that lives as long as the process:
    # keep it out of the collector's full passes (each would stall every request ~0.4 s).
    gc.freeze()
    print(banner(cloud, time.perf_counter() - started), flush=True)  # noqa: T201
    stop.wait()
    print("stopping: draining requests, stopping pollers and the emulator", flush=True)  # noqa: T201
    left = cloud.stop()
    print(f"stopped ({left} requests cut off)", flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
