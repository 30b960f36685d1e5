"""Progress lines for long jobs: done/total, rate and ETA, in the rule's log."""

from __future__ import annotations

import logging
import time

from tqdm import tqdm

log = logging.getLogger("photostyle.progress")


class Progress:
    """Logs ``tqdm``-formatted progress at most every ``interval_s`` seconds and at the end.

    Log files are not terminals, so instead of a redrawn bar each update is one line.
    """

    def __init__(self, total: int, label: str, interval_s: float = 10.0, unit: str = "photo"):
        self.total, self.label, self.interval_s, self.unit = total, label, interval_s, unit
        self.done = 0
        self.start = self.last = time.perf_counter()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.done >= self.total or now - self.last >= self.interval_s:
            self.last = now
            meter = tqdm.format_meter(self.done, self.total, now - self.start, unit=self.unit, ncols=0)
            log.info("%s: %s", self.label, meter)
