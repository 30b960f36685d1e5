"""The stylize and refine shard drivers, without Snakemake."""

import hashlib

import pytest

from conftest import save, smooth_photo
from photostyle.core.collection import sync_listings
from photostyle.config import validate_config
from photostyle.stages.ingest import ingest_listing
from photostyle.core.io import read_png_text
from photostyle.core.photo import PhotoLimits
from photostyle.stages.refine import run_refine_shard
from photostyle.stages.refine import settings as refine_settings
from photostyle.stages.stylize import run_stylize_shard


@pytest.fixture
def shard(tmp_path):
    root, sroot = tmp_path / "c", tmp_path / "s"
    for i in range(3):
        save(smooth_photo(24 + i, 30, seed=i), root / f"p{i}.png")
    save(smooth_photo(20, 20, seed=9), sroot / "style.png")
    (sroot / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cfg = validate_config({"device": "cpu"})
    limits = PhotoLimits.from_settings(cfg)
    (c_shard,) = sync_listings(root, tmp_path / "lc", 1000)
    ingest_listing(tmp_path / "lc" / f"{c_shard}.csv", root, "content", c_shard, limits, tmp_path / "content.csv")
    styles = sync_listings(sroot, tmp_path / "ls", per_file=True)
    ids = {}
    for sid, entries in styles.items():
        ingest_listing(tmp_path / "ls" / f"{sid}.csv", sroot, "style", sid, limits, tmp_path / f"{sid}.csv")
        ids[entries[0].relpath] = sid
    settings = {"params": cfg["methods"]["mkl"], "seed": 0, "device": "cpu", "ingest": cfg["ingest"]}
    return tmp_path, root, ids, settings, cfg


def _run(tmp_path, style_id, settings, tag):
    root = tmp_path / f"out_{tag}"
    index = root / "_index" / "mkl" / "shard.csv"
    rows = run_stylize_shard(tmp_path / "content.csv", [tmp_path / f"{style_id}.csv"], "mkl",
                             settings, root, index, "test")
    return root / style_id / "mkl", rows


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def test_outputs_carry_provenance_and_reruns_are_byte_identical(shard):
    tmp_path, _, ids, settings, _ = shard
    out1, rows = _run(tmp_path, ids["style.png"], settings, "a")
    assert [r["status"] for r in rows] == ["ok"] * 3
    text = read_png_text(out1 / f"{rows[0]['photo_id']}.png")
    assert text["photostyle:weights"] == "none" and text["photostyle:device"].startswith("cpu")
    assert text["photostyle:config_hash"] == rows[0]["config_hash"]
    out2, _ = _run(tmp_path, ids["style.png"], settings, "b")
    assert _digests(out1) == _digests(out2) and len(_digests(out1)) == 3


def test_changed_photo_fails_alone(shard):
    tmp_path, root, ids, settings, _ = shard
    save(smooth_photo(24, 30, seed=42), root / "p0.png")  # edited after ingest
    _, rows = _run(tmp_path, ids["style.png"], settings, "c")
    status = {r["photo_id"].split("-")[0]: (r["status"], r["error"]) for r in rows}
    assert status["p0"][0] == "failed" and "changed since ingest" in status["p0"][1]
    assert status["p1"][0] == status["p2"][0] == "ok"


def test_rejected_style_skips_with_reason(shard):
    tmp_path, _, ids, settings, _ = shard
    out, rows = _run(tmp_path, ids["broken.png"], settings, "d")
    assert {r["status"] for r in rows} == {"skipped"}
    assert all("rejected at ingest" in r["error"] for r in rows)
    assert not list(out.glob("*.png"))


def test_refine_stage_writes_refined_outputs(shard):
    tmp_path, _, ids, settings, cfg = shard
    sid = ids["style.png"]
    _run(tmp_path, sid, settings, "e")
    rsettings = refine_settings(cfg, ["mkl"])
    index = tmp_path / "ref" / "_index" / "mkl" / "shard.csv"
    rows = run_refine_shard(tmp_path / "content.csv", [tmp_path / "out_e" / "_index" / "mkl" / "shard.csv"],
                            rsettings, tmp_path / "ref", index, "test")
    assert [r["variant"] for r in rows] == ["refined"] * 3 and {r["status"] for r in rows} == {"ok"}
    out = tmp_path / "ref" / sid / "mkl" / f"{rows[0]['photo_id']}.png"
    assert read_png_text(out)["photostyle:variant"] == "refined"


def test_refine_job_covers_every_method_and_a_change_of_one_recomputes_only_that_one(shard):
    """One refine job per shard takes every method's stylize index; changing one method's
    refine settings (refine.per_method) recomputes that method's images and reuses the others'."""
    from photostyle.stages.stylize import settings as stylize_settings

    tmp_path, _, ids, _, cfg = shard
    sid = ids["style.png"]
    indexes = []
    for method in ("mkl", "reinhard"):
        root = tmp_path / "st"
        index = root / "_index" / method / "shard.csv"
        run_stylize_shard(tmp_path / "content.csv", [tmp_path / f"{sid}.csv"], method,
                          stylize_settings(cfg, method), root, index, "test")
        indexes.append(index)
    out_index = tmp_path / "rf" / "_index" / "all" / "shard.csv"
    first = run_refine_shard(tmp_path / "content.csv", indexes, refine_settings(cfg, ["mkl", "reinhard"]),
                             tmp_path / "rf", out_index, "test")
    assert sorted((r["method"], r["status"], r["cached"]) for r in first) == \
        [("mkl", "ok", 0)] * 3 + [("reinhard", "ok", 0)] * 3
    changed = validate_config({"device": "cpu", "refine": {"per_method": {"reinhard": {"iterations": 2}}}})
    hashes = {r["method"]: r["config_hash"] for r in first}
    again = run_refine_shard(tmp_path / "content.csv", indexes, refine_settings(changed, ["mkl", "reinhard"]),
                             tmp_path / "rf", out_index, "test")
    assert {(r["method"], r["cached"]) for r in again} == {("mkl", 1), ("reinhard", 0)}
    new_hashes = {r["method"]: r["config_hash"] for r in again}
    assert new_hashes["mkl"] == hashes["mkl"] and new_hashes["reinhard"] != hashes["reinhard"]
    # a method's own lift settings (lift.per_method) likewise recompute that method's images only
    lifted = validate_config({"device": "cpu", "refine": {"per_method": {"reinhard": {"iterations": 2}}},
                              "lift": {"per_method": {"mkl": {"model": "upsample"}}}})
    third = run_refine_shard(tmp_path / "content.csv", indexes, refine_settings(lifted, ["mkl", "reinhard"]),
                             tmp_path / "rf", out_index, "test")
    assert {(r["method"], r["cached"]) for r in third} == {("mkl", 0), ("reinhard", 1)}
    third_hashes = {r["method"]: r["config_hash"] for r in third}
    assert third_hashes["reinhard"] == new_hashes["reinhard"] and third_hashes["mkl"] != new_hashes["mkl"]
    # a method left out of the settings is not refined (refine.enabled: false for it)
    only = run_refine_shard(tmp_path / "content.csv", indexes, refine_settings(changed, ["reinhard"]),
                            tmp_path / "rf", out_index, "test")
    assert {r["method"] for r in only} == {"reinhard"} and all(r["cached"] == 1 for r in only)


def test_provenance_names_the_exact_input_files(shard):
    """The sha256 chunks are the digests of the files themselves, computed here independently:
    the content photo, the style photo, and (for a refined image) the stylised image it refines."""
    tmp_path, root, ids, settings, cfg = shard
    sid = ids["style.png"]
    out, rows = _run(tmp_path, sid, settings, "p")
    style_sha = hashlib.sha256((tmp_path / "s" / "style.png").read_bytes()).hexdigest()
    by_name = {p.stem: p for p in root.glob("*.png")}
    for r in rows:
        text = read_png_text(out / f"{r['photo_id']}.png")
        src = by_name[r["photo_id"].split("-")[0]]
        assert text["photostyle:source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert text["photostyle:style_sha256"] == style_sha
        assert text["photostyle:photo"] == r["photo_id"] and text["photostyle:style"] == sid
    rsettings = refine_settings(cfg, ["mkl"])
    refined = run_refine_shard(tmp_path / "content.csv", [tmp_path / "out_p" / "_index" / "mkl" / "shard.csv"],
                               rsettings, tmp_path / "refp", tmp_path / "refp" / "_index" / "mkl" / "s.csv", "t")
    for r in refined:
        text = read_png_text(r["output"])
        stylised = out / f"{r['photo_id']}.png"
        assert text["photostyle:input_sha256"] == hashlib.sha256(stylised.read_bytes()).hexdigest()


def test_valid_outputs_are_reused_and_invalid_ones_recomputed(shard):
    tmp_path, _, ids, settings, _ = shard
    sid = ids["style.png"]
    out, rows = _run(tmp_path, sid, settings, "f")
    assert [r["cached"] for r in rows] == [0, 0, 0]
    first = _digests(out)
    # a job killed halfway: one image missing, one half-written by something else
    (out / f"{rows[0]['photo_id']}.png").unlink()
    (out / f"{rows[1]['photo_id']}.png").write_bytes(b"garbage")
    _, again = _run(tmp_path, sid, settings, "f")
    assert [r["cached"] for r in again] == [0, 0, 1]
    assert again[2]["runtime_s"] == rows[2]["runtime_s"]  # taken from the ledger
    assert _digests(out) == first
    # another parameter value: nothing is reused
    _, changed = _run(tmp_path, sid, {**settings, "params": {**settings["params"], "strength": 0.5}}, "f")
    assert [r["cached"] for r in changed] == [0, 0, 0]


def test_declared_weights_are_resolved_once_and_recorded(shard, monkeypatch):
    """A method that declares pretrained weights gets them resolved by the driver, once per job;
    with weights.mode random the outputs say so (never a silent stand-in for pretrained)."""
    from photostyle import methods
    from photostyle.core import weights as W
    from photostyle.methods.colour import MKL

    class Fake(MKL):
        name = "fake"
        weights = ("vgg19-imagenet",)
        seen = []

        def __call__(self, content, style, masks=None):
            Fake.seen.append(self.resolved["vgg19-imagenet"])
            return content

    calls = []
    real_resolve = W.resolve
    monkeypatch.setattr(W, "resolve", lambda *a, **k: calls.append(a[0]) or real_resolve(*a, **k))
    monkeypatch.setitem(methods.REGISTRY, "fake", Fake)
    tmp_path, _, ids, settings, cfg = shard
    sid = ids["style.png"]
    s = {**settings, "weights": {"mode": "random", "dir": str(tmp_path / "w"), "download": False}}
    rows = run_stylize_shard(tmp_path / "content.csv", [tmp_path / f"{sid}.csv"], "fake", s, tmp_path / "o",
                             tmp_path / "o" / "_index" / "fake" / "x.csv", "test")
    assert calls == ["vgg19-imagenet"]  # resolved once for the whole job, not per photo
    assert {r["weights"] for r in rows} == {"vgg19-imagenet=random, seed 0"}
    assert len(Fake.seen) == 3 and all(r.is_random for r in Fake.seen)
    png = tmp_path / "o" / sid / "fake" / f"{rows[0]['photo_id']}.png"
    assert read_png_text(png)["photostyle:weights"] == "vgg19-imagenet=random, seed 0"


def test_a_methods_own_lift_settings_are_the_ones_its_results_are_lifted_with():
    """ContentPhotos.lift fits with the settings it is given (a method's lift.per_method), else the
    job's; method_section merges a method's override over the global keys."""
    import numpy as np
    import torch
    from PIL import Image

    from photostyle.ops import lift as L
    from photostyle.stages.common import ContentPhotos, method_section

    cfg = validate_config({"lift": {"radius": 4, "per_method": {"fast": {"model": "upsample"}}}})
    assert method_section(cfg["lift"], "fast") == {**{k: v for k, v in cfg["lift"].items() if k != "per_method"},
                                                   "model": "upsample"}
    assert method_section(cfg["lift"], "wct")["model"] == "auto" and method_section(cfg["lift"], "wct")["radius"] == 4
    full = smooth_photo(90, 120, seed=4)
    work = np.asarray(Image.fromarray(full).resize((60, 45), Image.Resampling.LANCZOS))
    stylised = torch.from_numpy(np.ascontiguousarray(work[..., ::-1])).permute(2, 0, 1)[None].float() / 255
    content = ContentPhotos(PhotoLimits.from_settings(cfg), method_section(cfg["lift"], "wct"))  # a job's settings
    content.images = lambda row: (full, work)
    content._label_map = lambda photo_id: None
    row = {"id": "p"}
    own = content.lift(row, stylised, None, method_section(cfg["lift"], "fast")).clone()
    expected = L.apply(L.fit(work, stylised, model="upsample"), full)
    assert torch.equal(own, expected)
    default = content.lift(row, stylised, None).clone()
    assert torch.equal(default, L.apply(L.fit(work, stylised, radius=4), full))
    assert not torch.equal(own, default)
