"""Keep the garbage collector off the heap every test shares.

Python's cyclic collector rescans every tracked object in its oldest generation
on each full collection, and after the first replayed test that generation holds
the SDK, pydantic's schemas, numpy, scipy and vcrpy (imported lazily by that
test) and pytest's items: a replayed test allocates enough (parsed cassettes,
SDK objects) to trigger such scans again and again, which took a fifth to a
quarter of a replayed suite's time. Once those are loaded, ``gc.freeze()`` moves
them to the permanent generation, which is never scanned. A collection first
keeps the garbage of that test from becoming permanent; what is frozen was
going to live to the end of the run anyway.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_once() -> None:
    """After the first test that made calls: freeze what the run keeps (once per process)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
