"""Endpoint targets kept between batches: the settings are read in full again only when they changed.

Reading a target (the app's `resolve`: its settings rows as ORM objects, the keys decrypted, the URL rule
run again) costs more than the try it serves. The app also gives a `stamp`: one cheap read of the rows a
target is built from, in the claim's transaction. A target is used again while its stamp is unchanged, so
each try still uses the settings saved at that moment (a saved change, a new key or a grace period that
ended all change the stamp). A target that cannot be sent to (`problem`, `held`) is never kept: the next
claim reads it again, as a master key put right must be seen at once.
"""
from collections.abc import Callable

from .claim import Resolve, Target

Stamp = Callable[[set[str]], dict[str, object]]  # endpoint ids -> what their targets are built from (==)
MAX_KEPT = 10_000  # endpoints; beyond it the cache starts again (endpoints removed are never asked for)


class TargetCache:
    """A `resolve` that reads again only the endpoints whose stamp changed; safe to share between threads."""

    def __init__(self, resolve: Resolve, stamp: Stamp):
        self._resolve, self._stamp = resolve, stamp
        self._kept: dict[str, tuple[object, Target]] = {}  # endpoint id -> (stamp, target)

    def __call__(self, ids: set[str]) -> dict[str, Target]:
        """Each endpoint (by id) as its tries need it now, in the caller's transaction."""
        stamps = self._stamp(ids)
        found, stale = {}, set()
        for endpoint_id in ids:
            kept = self._kept.get(endpoint_id)
            if kept is not None and endpoint_id in stamps and kept[0] == stamps[endpoint_id]:
                found[endpoint_id] = kept[1]
            else:
                stale.add(endpoint_id)
        if stale:
            fresh = self._resolve(stale)
            if len(self._kept) > MAX_KEPT:
                self._kept = {}
            for endpoint_id, target in fresh.items():
                if endpoint_id in stamps and not (target.problem or target.held):
                    self._kept[endpoint_id] = (stamps[endpoint_id], target)
                else:
                    self._kept.pop(endpoint_id, None)
            found.update(fresh)
        return found
