"""`bastion.startup_objects.freeze`: the start's garbage is collected, what is alive is frozen,
and full collections walk only what comes after."""

from __future__ import annotations

import gc
import weakref

from bastion import startup_objects


class _Cycle:
    """An object only the cyclic collector frees once it is dropped."""

    def __init__(self) -> None:
        self.me = self


def test_full_collections_walk_only_what_came_after_the_freeze(unfrozen: None) -> None:
    kept = [_Cycle() for _ in range(100)]
    dropped = [weakref.ref(_Cycle()) for _ in range(100)]  # garbage of the start
    walked_before = len(gc.get_objects())
    startup_objects.freeze()
    assert all(ref() is None for ref in dropped)  # collected first, not frozen for good
    assert gc.get_freeze_count() > 10_000  # this process's modules, at least
    later = [_Cycle() for _ in range(100)]
    walked = gc.get_objects()
    assert len(walked) < walked_before / 4
    cycles = [o for o in walked if type(o) is _Cycle]
    assert len(cycles) == len(later) and all(any(c is o for o in later) for c in cycles)
    assert len(kept) == 100  # alive, frozen, out of the walk
