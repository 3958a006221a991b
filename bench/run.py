"""`make bench`: the dispatcher against a bare requests loop and against itself, as same-run ratios.

Prints each figure as `name: value`. Nothing here is a test; the targets live in issue 6 and the README.
`python run.py [GROUP...]` runs only the named groups (see GROUPS), in that order; all by default. Each group
lives in the module named after what it measures: dispatch.py, latency.py, body.py, pages.py, workers.py, soak.py.
"""
import sys
import time

from body import body_scan_figures
from common import SCRATCH
from dispatch import dispatch_figures, drain_figures, fanout_figures, independent_figures, outage_figures
from latency import latency_figures
from pages import page_figures
from soak import simulate_figures, soak_figures
from workers import pg_figures, rss_figures

GROUPS = {"dispatch": dispatch_figures, "independent": independent_figures, "latency": latency_figures,
          "drain": drain_figures, "outage": outage_figures, "fanout": fanout_figures, "body": body_scan_figures,
          "pages": page_figures, "pg": pg_figures, "rss": rss_figures, "simulate": simulate_figures,
          "soak": soak_figures}


def main(names: list[str]) -> None:
    """Run the named groups (all when none are named) and say how long it took."""
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        sys.exit(f"unknown group {', '.join(unknown)}; the groups are {', '.join(GROUPS)}")
    started = time.monotonic()
    for name in names or GROUPS:
        GROUPS[name]()
    print(f"(bench took {time.monotonic() - started:.0f}s; scratch data in {SCRATCH})")


if __name__ == "__main__":
    main(sys.argv[1:])
