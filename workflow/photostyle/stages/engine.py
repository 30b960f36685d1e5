"""The shard-job engine: the one loop that segment, stylize, refine and metrics run.

For each item of a shard (a photo, a photo x style, an output to measure) the engine

1. records it as it is if the stage already decided its fate (``row["status"]`` set: a style
   rejected at ingest, a stylisation that failed upstream);
2. reuses its output file if the provenance embedded in that file equals the item's (so a
   killed job resumes where it stopped and adding a style computes only that style), taking
   the runtime from the job's ledger (a copy of its last index that survives Snakemake's
   deletion of outputs before a rerun);
3. else computes it (or takes it from the chunk's batch, see ``precompute``), writes it
   atomically through the stage's ``write``, and records status, runtime and peak memory;
4. records any failure of that one item (error class and message) and goes on: one bad photo
   never ends the job;

logs progress, writes the index (and ledger) atomically, and logs a summary line.
``PHOTOSTYLE_RECOMPUTE=1`` turns reuse off (e.g. ``PHOTOSTYLE_RECOMPUTE=1 snakemake
--forcerun stylize``).
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from photostyle.core.deliver import read_provenance
from photostyle.core.io import read_csv_dicts, write_csv_atomic
from photostyle.core.photo import PhotoRejected
from photostyle.core.progress import Progress

log = logging.getLogger(__name__)

PROV = "photostyle:"  # prefix of the provenance keys embedded in output PNGs
ITEM_ERRORS = (PhotoRejected, RuntimeError, ValueError, OSError, MemoryError)


@dataclass
class Item:
    """One unit of work: its index row, its output file and the provenance that file must carry."""

    key: tuple[str, ...]  # identifies the item in the ledger, e.g. (photo id, style id)
    row: dict  # the index row; a "status" set by the stage means: record as is
    out: Path | None = None  # the output file (None: the result is the row itself)
    provenance: dict[str, str] | None = None  # None: never reused
    data: Any = None  # what the stage's compute needs (source rows, bytes already read)


def is_current(path: Path | None, expected: dict[str, str] | None) -> bool:
    """Whether ``path`` exists and its provenance chunks equal ``expected`` (pixels are not read)."""
    if path is None or expected is None or os.environ.get("PHOTOSTYLE_RECOMPUTE", "") not in ("", "0"):
        return False
    try:
        text = read_provenance(path)  # PNG text chunks, or a deliverable's EXIF UserComment
    except (OSError, SyntaxError, ValueError):
        return False
    return all(text.get(PROV + k) == v for k, v in expected.items())


def provenance_text(provenance: dict[str, str]) -> dict[str, str]:
    return {PROV + k: v for k, v in provenance.items()}


def ledger_path(index_out) -> Path:
    """``results/<stage>/_ledger/<group>/<shard>.csv`` for ``results/<stage>/_index/<group>/<shard>.csv``."""
    index_out = Path(index_out)
    return index_out.parent.parent.parent / "_ledger" / index_out.parent.name / index_out.name


def batched(todo: list[Item], key: Callable[[Item], Any], run: Callable[[list[Item]], Sequence[Any]],
            label: str = "batch") -> dict[int, tuple[Any, float]]:
    """A ``precompute`` for :meth:`ShardJob.run`: the items that share ``key(item)`` (e.g. a
    photo size) go through ``run(group)`` together, each taking an equal share of its time.
    Items whose key raises, groups of one, and groups whose run fails (out of memory, say) are
    left to ``compute``, which then works one item at a time and records any failure."""
    groups: dict[Any, list[Item]] = {}
    for it in todo:
        try:
            groups.setdefault(key(it), []).append(it)
        except ITEM_ERRORS:
            continue
    ready = {}
    for group in (g for g in groups.values() if len(g) > 1):
        t0 = time.perf_counter()
        try:
            results = run(group)
        except ITEM_ERRORS as exc:
            log.warning("%s of %d items failed (%s); computing them one by one", label, len(group), exc)
            continue
        share = (time.perf_counter() - t0) / len(group)
        ready.update({id(it): (res, share) for it, res in zip(group, results)})
    return ready


class PeakMemory:
    """Peak memory of the job: CUDA's allocator peak per item, else the process's max RSS."""

    def __init__(self, device=None):
        self.cuda = device is not None and getattr(device, "type", "cpu") == "cuda"
        self.device = device

    def reset(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)

    def mb(self) -> float:
        if self.cuda:
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    def release(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.empty_cache()


class ShardJob:
    """Runs the items of one shard job; see the module docstring.

    ``columns``: the index's columns; ``time_column`` / ``memory_column``: where an item's
    seconds and peak memory go (None: not recorded); ``ledger``: keep a copy of the index
    from which reused items take their times and ``keep_columns``."""

    def __init__(self, label: str, index_out, columns: Sequence[str], *, device=None,
                 time_column: str = "runtime_s", memory_column: str | None = "peak_mem_mb", ledger: bool = True,
                 keep_columns: Sequence[str] = ()):
        self.label, self.index_out, self.columns = label, Path(index_out), tuple(columns)
        self.time_column, self.memory_column, self.use_ledger = time_column, memory_column, ledger
        self.keep_columns = tuple(keep_columns)
        self.memory = PeakMemory(device)
        path = ledger_path(index_out)
        self._ledger_rows = [r for r in read_csv_dicts(path) if r.get("status") == "ok"] \
            if ledger and path.exists() else []

    def previous(self, item: Item, key_columns: Sequence[str]) -> dict:
        """The item's row of the last run (empty if none)."""
        if not hasattr(self, "_by_key"):
            self._by_key = {tuple(r.get(c, "") for c in key_columns): r for r in self._ledger_rows}
        return self._by_key.get(item.key, {})

    def run(self, chunks: Iterable[list[Item]], compute: Callable[[Item], Any],
            write: Callable[[Item, Any], dict | None] | None = None, *,
            precompute: Callable[[list[Item]], dict[int, tuple[Any, float]]] | None = None,
            key_columns: Sequence[str] = ("photo_id", "style"), total: int | None = None) -> list[dict]:
        """Run every item; ``compute(item)`` returns a result, ``write(item, result)`` stores it
        atomically and returns extra row fields. ``precompute(todo)`` (batching stages) may
        return ``{id(item): (result, seconds)}`` for the chunk's items that need computing."""
        if total is None:  # a generator of chunks is consumed lazily (stages load per chunk); give its total
            chunks = list(chunks)
            total = sum(len(c) for c in chunks)
        progress = Progress(total, self.label)
        rows: list[dict] = []
        for chunk in chunks:
            todo = [it for it in chunk if not it.row.get("status") and not is_current(it.out, it.provenance)]
            ready = precompute(todo) if precompute is not None and len(todo) > 1 else {}
            todo_ids = {id(it) for it in todo}
            for it in chunk:
                rows.append(self._one(it, id(it) in todo_ids, ready.get(id(it)), compute, write, key_columns))
                progress.step()
        counts = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "failed", "skipped")}
        reused = sum(str(r.get("cached")) == "1" for r in rows)
        log.info("%s done: %d computed, %d reused, %d failed, %d skipped", self.label,
                 counts["ok"] - reused, reused, counts["failed"], counts["skipped"])
        if self.use_ledger:
            write_csv_atomic(ledger_path(self.index_out), self.columns, rows)
        write_csv_atomic(self.index_out, self.columns, rows)
        return rows

    def _one(self, it: Item, needs_compute: bool, ready, compute, write, key_columns) -> dict:
        row = {**dict.fromkeys(self.columns, ""), **it.row}
        if it.row.get("status"):  # decided by the stage (skipped, failed upstream)
            return row
        if not needs_compute:  # reused: its output's provenance is current
            old = self.previous(it, key_columns)
            row.update(status="ok", cached=1, output=str(it.out) if it.out else row.get("output", ""))
            for col in (self.time_column, self.memory_column):
                if col:
                    row[col] = old.get(col, "")
            for col in self.keep_columns:  # what the last run recorded, where the stage set nothing
                row[col] = row.get(col) or old.get(col, "")
            return row
        t0 = time.perf_counter()
        self.memory.reset()
        try:
            if ready is not None:
                result, share = ready
                t0 -= share  # its share of the batch's time, plus its write below
            else:
                result = compute(it)
            extra = write(it, result) if write is not None else None
        except ITEM_ERRORS as exc:
            log.error("%s: %s failed: %s", self.label, "/".join(it.key), exc)
            self.memory.release()
            return {**row, "status": "failed", "error": f"{exc.__class__.__name__}: {exc}"}
        row.update(status="ok", cached=0, **(extra or {}))
        if it.out is not None:
            row["output"] = str(it.out)
        if self.time_column:
            row[self.time_column] = f"{time.perf_counter() - t0:.4f}"
        if self.memory_column:
            row[self.memory_column] = f"{self.memory.mb():.1f}"
        return row
