"""The API's depth scan of a large JSON body (group body)."""
import time

from common import figure

from qlar_console.api.body import MAX_DEPTH, too_deep


def body_scan_figures() -> None:
    """The API's depth scan of a 1 MiB body: the slowest of the shapes that cost most, best of 5 each (issue 25:
    body_scan_1mib_ms, target at most 50)."""
    size = 1024 * 1024
    shapes = [b'"' + b'\\"' * (size // 2 - 1), b'"' * size, b'"",' * (size // 3), b"[]" * (size // 2),
              b'["' + b"a" * (size - 4) + b'"]']
    best = []
    for body in shapes:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            too_deep(body, MAX_DEPTH)
            runs.append(time.perf_counter() - started)
        best.append(min(runs))
    figure("body_scan_1mib_ms", f"{max(best) * 1000:.1f}")
