"""`settle_heap`: a serving process freezes its start-up heap and collects less often."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.runtime.server import GC_YOUNG_THRESHOLD

# In a fresh interpreter: freezing is process-wide, so not in the test process itself.
_PROBE = """
import gc, json
from gateway.runtime.server import settle_heap
before = gc.get_threshold()
settle_heap()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "tracked": len(gc.get_objects())}))
"""


def test_settling_freezes_the_start_up_heap_and_raises_only_the_young_threshold() -> None:
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout)

    before, after = seen["before"], seen["after"]
    assert after == [GC_YOUNG_THRESHOLD, before[1], before[2]]
    # Everything the imports made is frozen: the collector tracks next to nothing afterwards.
    assert seen["frozen"] > 10_000
    assert seen["tracked"] < seen["frozen"] / 100
