"""Collaborative Distillation's encoders and decoders, shipped with the package: tests that random
weights cannot pass (reconstruction of a real photo), strict key mapping, digests, and WCT with
them moving each region's colours to the style's."""

import shutil

import numpy as np
import pytest
import torch

from conftest import sample_photo
from photostyle.core import weights as W
from photostyle.core.tensors import to_tensor
from photostyle.nets import distilled as D


def shipped(name: str) -> W.Resolved:
    """Resolved from the package's own copy only (no weights dir, no search path, no download)."""
    return W.resolve(name, "pretrained", "/nonexistent-weights", seed=0, download=False)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def reconstruct(level: int, decoder: W.Resolved, photo: np.ndarray) -> float:
    x = to_tensor(photo)[..., : photo.shape[0] // 16 * 16, : photo.shape[1] // 16 * 16]
    enc = D.load("encoder", level, shipped(f"cd16x-encoder{level}"))
    dec = D.load("decoder", level, decoder)
    with torch.no_grad():
        return psnr(dec(enc(x)), x)


def test_every_distilled_file_is_registered_shipped_and_verified_by_full_digest():
    for part in ("encoder", "decoder"):
        for level in D.LEVELS:
            spec = W.REGISTRY[f"cd16x-{part}{level}"]
            assert spec.shipped and len(spec.sha256) == 64 and "4a269dc90020721ef9b279b2926c62f5bcd6d209" in spec.url
            r = shipped(spec.name)
            assert r.path.is_relative_to(W.SHIPPED_DIR) and r.provenance == f"sha256:{spec.sha256}"
    assert (W.SHIPPED_DIR / "collaborative-distillation" / "LICENSE").read_text().startswith("MIT License")


def test_level1_decoder_reconstructs_a_real_photo_and_random_weights_do_not():
    photo = sample_photo("coffee.jpg")
    assert reconstruct(1, shipped("cd16x-decoder1"), photo) > 35.0
    # the broken variant: the same decoder with seeded random weights gives noise
    assert reconstruct(1, W.resolve("cd16x-decoder1", "random", "/x", seed=0), photo) < 15.0


def test_deeper_levels_reconstruct_less_well_but_recognisably():
    photo = sample_photo("chelsea.jpg")
    figures = [reconstruct(k, shipped(f"cd16x-decoder{k}"), photo) for k in (2, 3, 4)]
    assert all(f > 20.0 for f in figures), figures
    assert figures[0] > figures[2], figures


@pytest.mark.parametrize("change", ["rename", "drop", "extra"])
def test_keys_map_strictly(change, tmp_path, monkeypatch):
    blob = torch.load(shipped("cd16x-encoder2").path, map_location="cpu", weights_only=True)
    state = dict(blob["model"])
    if change == "rename":
        state["conv12x.weight"] = state.pop("conv12.weight")
    elif change == "drop":
        del state["conv21.bias"]
    else:
        state["conv99.weight"] = torch.zeros(1)
    monkeypatch.setattr(W, "load_state_dict", lambda r: {"model": state})
    with pytest.raises(RuntimeError, match="state_dict"):
        D.load("encoder", 2, shipped("cd16x-encoder2"))


def test_a_tampered_shipped_file_or_weights_dir_copy_is_refused(tmp_path, monkeypatch):
    wdir = tmp_path / "weights" / "collaborative-distillation"
    wdir.mkdir(parents=True)
    src = shipped("cd16x-decoder1").path
    data = bytearray(src.read_bytes())
    data[-10] ^= 0xFF
    (wdir / "decoder1.pth").write_bytes(bytes(data))
    with pytest.raises(W.ChecksumMismatch):  # auto must not fall back to random on a bad file
        W.resolve("cd16x-decoder1", "auto", tmp_path / "weights", seed=0, download=False)
    fake_shipped = tmp_path / "pkg"
    shutil.copytree(tmp_path / "weights", fake_shipped)
    monkeypatch.setattr(W, "SHIPPED_DIR", fake_shipped)
    with pytest.raises(W.ChecksumMismatch):
        W.resolve("cd16x-decoder1", "pretrained", tmp_path / "empty", seed=0, download=False)


def test_wct_on_distilled_networks_moves_each_region_to_its_styles_colours():
    """Two regions (left/right halves) styled from two differently coloured style regions: each
    content half takes its own style region's mean colour; the untouched content does not."""
    from photostyle.methods import get_method
    from photostyle.ops.regions import Match, build_masks

    photo = sample_photo("chelsea.jpg")[:192, :288]
    style = np.concatenate([sample_photo("coffee.jpg")[:192, :144] * np.array([1.0, 0.5, 0.3]),
                            sample_photo("coffee.jpg")[:192, 144:288] * np.array([0.3, 0.6, 1.0])], axis=1)
    style = style.clip(0, 255).astype(np.uint8)
    labels = np.zeros(photo.shape[:2], np.uint8)
    labels[:, 144:] = 1
    masks = build_masks(labels, labels.copy(), [Match(0, 0, "same"), Match(1, 1, "same")], "cpu", blur_fraction=0)
    settings = {"params": {"levels": [3, 2, 1]}, "seed": 0,
                "weights": {"mode": "pretrained", "dir": "/nonexistent", "download": False}}
    method = get_method("wct_photo").for_job(settings, torch.device("cpu"), ["s"], "/nonexistent")
    assert "cd16x-encoder3=sha256:" in method.provenance("s") and "random" not in method.provenance("s")
    with torch.no_grad():
        out = method(to_tensor(photo), method.prepare_style(to_tensor(style), "s"), masks)[0].permute(1, 2, 0).numpy() * 255
    for half in (slice(0, 144), slice(144, 288)):
        target = style[:, half].reshape(-1, 3).mean(0)
        got, before = out[:, half].reshape(-1, 3).mean(0), photo[:, half].reshape(-1, 3).mean(0)
        assert np.abs(got - target).max() < 12, (got, target)
        assert np.abs(before - target).max() > 40
