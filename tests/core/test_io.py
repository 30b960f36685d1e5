import os
import stat
import time

import numpy as np
import pytest

from photostyle.core.io import atomic_path, read_png_text, write_if_changed, write_png_atomic


def test_interrupted_write_leaves_nothing_that_looks_finished(tmp_path):
    dest = tmp_path / "out.png"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half a fi")
            raise KeyboardInterrupt
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_file(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("new but incomplete")
            raise RuntimeError("killed")
    assert dest.read_text() == "old"


def test_write_if_changed_keeps_mtime(tmp_path):
    p = tmp_path / "a.csv"
    assert write_if_changed(p, "x\n")
    m = p.stat().st_mtime_ns
    time.sleep(0.02)
    assert not write_if_changed(p, "x\n")
    assert p.stat().st_mtime_ns == m
    assert write_if_changed(p, "y\n")


def test_png_is_deterministic_and_carries_provenance(tmp_path):
    img = (np.arange(30 * 20 * 3) % 256).astype(np.uint8).reshape(30, 20, 3)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_png_atomic(a, img, {"photostyle:weights": "random, seed 3"})
    write_png_atomic(b, img, {"photostyle:weights": "random, seed 3"})
    assert a.read_bytes() == b.read_bytes()
    assert read_png_text(a)["photostyle:weights"] == "random, seed 3"


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_png_atomic(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8))
        write_if_changed(tmp_path / "b.csv", "x\n")
        with atomic_path(tmp_path / "c.bin") as tmp:
            tmp.write_bytes(b"1")
    finally:
        os.umask(old)
    for name in ("a.png", "b.csv", "c.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
