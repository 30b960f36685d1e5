"""The shard-job engine, with a toy stage: reuse, recompute, failures, batches, ledger."""

import numpy as np
import pytest

from photostyle.core.io import read_csv_dicts, write_png_atomic
from photostyle.stages.engine import Item, ShardJob, ledger_path, provenance_text

COLUMNS = ("photo_id", "style", "status", "cached", "output", "error", "runtime_s", "peak_mem_mb", "note")


def _items(tmp_path, version="1", n=4, preset=None):
    items = []
    for i in range(n):
        row = {"photo_id": f"p{i}", "style": "s"}
        if preset and i in preset:
            row.update(status=preset[i], error="decided upstream")
        items.append(Item((f"p{i}", "s"), row, tmp_path / "out" / f"p{i}.png", {"version": version, "photo": f"p{i}"},
                          data=i))
    return items


def _compute(calls):
    def compute(it):
        calls.append(it.data)
        if it.data == 2 and getattr(compute, "fail", False):
            raise ValueError("photo 2 is broken")
        return np.full((2, 2, 3), it.data * 10, np.uint8)

    return compute


def _write(it, img):
    write_png_atomic(it.out, img, text=provenance_text(it.provenance))
    return {"note": f"wrote {it.data}"}


def _run(tmp_path, items, calls, fail=False, **kw):
    compute = _compute(calls)
    compute.fail = fail
    job = ShardJob("toy", tmp_path / "_index" / "toy" / "shard.csv", COLUMNS, keep_columns=("note",))
    return job.run([[it] for it in items], compute, _write, **kw)


def test_computes_then_reuses_current_outputs_and_keeps_their_times(tmp_path):
    calls = []
    rows = _run(tmp_path, _items(tmp_path), calls)
    assert calls == [0, 1, 2, 3] and [r["cached"] for r in rows] == [0] * 4
    assert all(r["status"] == "ok" and float(r["runtime_s"]) >= 0 for r in rows)
    calls.clear()
    (tmp_path / "out" / "p1.png").write_bytes(b"half-written")  # as a killed job might leave it
    again = _run(tmp_path, _items(tmp_path), calls)
    assert calls == [1]  # only the damaged output is recomputed
    assert [r["cached"] for r in again] == [1, 0, 1, 1]
    assert again[0]["runtime_s"] == rows[0]["runtime_s"] and again[0]["note"] == "wrote 0"  # from the ledger
    index = read_csv_dicts(tmp_path / "_index" / "toy" / "shard.csv")
    assert [r["status"] for r in index] == ["ok"] * 4 and ledger_path(tmp_path / "_index" / "toy" / "shard.csv").exists()


def test_changed_provenance_recomputes_and_recompute_env_forces_it(tmp_path, monkeypatch):
    calls = []
    _run(tmp_path, _items(tmp_path), calls)
    calls.clear()
    _run(tmp_path, _items(tmp_path, version="2"), calls)
    assert calls == [0, 1, 2, 3]
    calls.clear()
    monkeypatch.setenv("PHOTOSTYLE_RECOMPUTE", "1")
    _run(tmp_path, _items(tmp_path, version="2"), calls)
    assert calls == [0, 1, 2, 3]


def test_one_failure_is_recorded_and_the_job_goes_on(tmp_path):
    calls = []
    rows = _run(tmp_path, _items(tmp_path), calls, fail=True)
    assert calls == [0, 1, 2, 3]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok"]
    assert rows[2]["error"] == "ValueError: photo 2 is broken" and not (tmp_path / "out" / "p2.png").exists()


def test_items_decided_by_the_stage_are_recorded_as_they_are(tmp_path):
    calls = []
    rows = _run(tmp_path, _items(tmp_path, preset={1: "skipped", 3: "failed"}), calls)
    assert calls == [0, 2]
    assert [(r["status"], r["error"]) for r in rows] == [("ok", ""), ("skipped", "decided upstream"),
                                                         ("ok", ""), ("failed", "decided upstream")]


def test_precomputed_batch_results_are_used_for_the_items_that_need_computing(tmp_path):
    calls, batches = [], []
    _run(tmp_path, _items(tmp_path, n=2), calls)  # p0, p1 exist and are current
    calls.clear()

    def precompute(todo):
        batches.append([it.data for it in todo])
        return {id(it): (np.full((2, 2, 3), 99, np.uint8), 0.5) for it in todo}

    job = ShardJob("toy", tmp_path / "_index" / "toy" / "shard.csv", COLUMNS)
    rows = job.run([_items(tmp_path, n=4)], _compute(calls), _write, precompute=precompute)
    assert batches == [[2, 3]] and calls == []  # one batch of the two new items; nothing computed singly
    assert [r["cached"] for r in rows] == [1, 1, 0, 0]
    assert all(float(r["runtime_s"]) >= 0.5 for r in rows[2:])  # its share of the batch's time


@pytest.mark.parametrize("consume", ["list", "generator"])
def test_chunks_may_be_a_lazy_generator(tmp_path, consume):
    seen = []

    def chunks():
        for it in _items(tmp_path, n=3):
            seen.append(("made", it.data))
            yield [it]

    calls = []
    compute = _compute(calls)

    def tracking(it):
        seen.append(("computed", it.data))
        return compute(it)

    job = ShardJob("toy", tmp_path / "i" / "t" / "s.csv", COLUMNS)
    src = list(chunks()) if consume == "list" else chunks()
    job.run(src, tracking, _write, total=3)
    if consume == "generator":  # each chunk is made just before it runs (a stage loads per chunk)
        assert seen == [("made", 0), ("computed", 0), ("made", 1), ("computed", 1), ("made", 2), ("computed", 2)]
