"""The weights resolver, on a tiny weight file the test makes (nothing is downloaded)."""

import hashlib
import pickle

import pytest
import torch

from photostyle.core import weights as W


@pytest.fixture
def fake_spec(tmp_path, monkeypatch):
    state = {"conv.weight": torch.arange(6.0).reshape(2, 3)}
    src = tmp_path / "made.pth"
    torch.save(state, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    spec = W.WeightSpec("tiny-test", "url", "http://127.0.0.1:9/tiny.pth", "tiny-abc.pth", digest[:8])
    monkeypatch.setitem(W.REGISTRY, "tiny-test", spec)
    monkeypatch.setattr(W, "_cache_candidates", lambda s: [])
    return spec, src, state, digest


def test_pretrained_from_weights_dir_is_verified_and_recorded(fake_spec, tmp_path):
    spec, src, state, digest = fake_spec
    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / spec.filename).write_bytes(src.read_bytes())
    r = W.resolve("tiny-test", "pretrained", wdir, seed=1, download=False)
    assert r.provenance == f"sha256:{digest}" and not r.is_random
    loaded = W.load_state_dict(r)
    assert torch.equal(loaded["conv.weight"], state["conv.weight"])


def test_checksum_mismatch_is_refused(fake_spec, tmp_path):
    spec, *_ = fake_spec
    wdir = tmp_path / "weights"
    wdir.mkdir()
    torch.save({"x": torch.zeros(1)}, wdir / spec.filename)  # different content
    with pytest.raises(W.ChecksumMismatch):
        W.resolve("tiny-test", "pretrained", wdir, seed=1, download=False)
    with pytest.raises(W.ChecksumMismatch):  # auto must not fall back to random on a bad file
        W.resolve("tiny-test", "auto", wdir, seed=1, download=False)


def test_sha256sums_lock_is_enforced(fake_spec, tmp_path):
    spec, src, _, digest = fake_spec
    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / spec.filename).write_bytes(src.read_bytes())
    W.record_sum(wdir, spec.filename, "0" * 64)
    with pytest.raises(W.ChecksumMismatch, match="SHA256SUMS"):
        W.resolve("tiny-test", "pretrained", wdir, seed=1, download=False)


def test_missing_pretrained_error_names_file_url_and_place(fake_spec, tmp_path):
    spec, *_ = fake_spec
    with pytest.raises(W.WeightsUnavailable) as exc:
        W.resolve("tiny-test", "pretrained", tmp_path / "none", seed=1, download=True)
    msg = str(exc.value)
    assert spec.filename in msg and spec.url in msg and str(tmp_path / "none" / spec.filename) in msg
    assert "download" in msg and "fetch_weights" in msg


def test_random_mode_is_explicit_and_seeded(fake_spec, tmp_path):
    r = W.resolve("tiny-test", "random", tmp_path, seed=7)
    assert r.is_random and r.provenance == "random, seed 7"


def test_auto_falls_back_to_random_loudly(fake_spec, tmp_path, caplog):
    with pytest.warns(RuntimeWarning, match="RANDOM"):
        r = W.resolve("tiny-test", "auto", tmp_path / "none", seed=3, download=False)
    assert r.provenance == "random, seed 3"
    assert any("RANDOM" in rec.message for rec in caplog.records)


def test_weights_only_refuses_arbitrary_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"w": Evil()}, fh)
    spec = W.WeightSpec("evil", "url", "x", "evil.pth")
    with pytest.raises(pickle.UnpicklingError):
        W.load_state_dict(W.Resolved(spec, path, "sha256:x"))


def test_registry_lists_real_sources():
    assert W.REGISTRY["vgg19-imagenet"].url.endswith("vgg19-dcbb9e9d.pth")
    assert W.REGISTRY["segformer-b2-ade20k"].url == "smp-hub/segformer-b2-512x512-ade-160k"
    for spec in W.REGISTRY.values():
        if spec.source == "url" and not spec.locked_on_fetch:  # a full digest, or torchvision's prefix in the name
            assert (len(spec.sha256) == 64) or (spec.sha256_prefix and spec.sha256_prefix in spec.filename), spec.name
    # files without a published digest (clovaai/WCT2) are used only once fetch-weights locked them
    assert {n for n, s in W.REGISTRY.items() if s.locked_on_fetch} == {
        f"wct2-{p}-{o}" for p in ("encoder", "decoder") for o in ("cat5", "sum")}


def test_an_unlocked_file_without_published_digest_is_refused(tmp_path):
    spec = W.REGISTRY["wct2-decoder-cat5"]
    (tmp_path / spec.filename).write_bytes(b"a checkpoint that turned up")
    with pytest.raises(W.ChecksumMismatch, match="fetch-weights"):
        W.resolve("wct2-decoder-cat5", "pretrained", tmp_path, 0, download=False)
    W.record_sum(tmp_path, spec.filename, W.sha256_file(tmp_path / spec.filename))
    assert W.resolve("wct2-decoder-cat5", "pretrained", tmp_path, 0, download=False).path == tmp_path / spec.filename
    (tmp_path / spec.filename).write_bytes(b"swapped afterwards")
    with pytest.raises(W.ChecksumMismatch, match="SHA256SUMS"):
        W.resolve("wct2-decoder-cat5", "pretrained", tmp_path, 0, download=False)


class _Payload:
    """A pickle that runs code when loaded unsafely: it makes a folder."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


def _loaders(path):
    """Every place the package loads a torch file, called on ``path``."""
    import torch

    from photostyle.nets import fastnet, trainloop, universal

    def checkpoint():  # resuming training reads the checkpoint first
        net = torch.nn.Linear(1, 1)
        trainloop.fit(net, lambda x: {"l": net(x).sum()}, None, {"learning_rate": 1e-3}, lambda n: None, path,
                      path.with_suffix(".csv"), ("step",), {"config_hash": "x"}, "cpu")

    return {
        "pretrained state dict": lambda: W.load_state_dict(W.Resolved(W.WeightSpec("e", "url", "x", "e.pth"), path, "x")),
        "trained fast network": lambda: fastnet.load_model(path, "cpu"),
        "fast network metadata": lambda: fastnet.read_meta(path),
        "trained decoder": lambda: universal.load_decoder(path, "cpu"),
        "training checkpoint": checkpoint,
    }


@pytest.mark.parametrize("loader", ["pretrained state dict", "trained fast network", "fast network metadata",
                                    "trained decoder", "training checkpoint"])
def test_every_loader_refuses_code_in_a_pickle_whatever_torchs_default(loader, tmp_path, monkeypatch):
    """Torch defaults to weights_only=True today; older versions did not. Simulate an unsafe
    default: each loader must still ask for weights_only=True and refuse the payload."""
    import torch

    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": _Payload(marker), "meta": {}}, fh)
    calls = []
    real_load = torch.load

    def load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        kwargs.setdefault("weights_only", False)  # an old torch's unsafe default
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    with pytest.raises(pickle.UnpicklingError):
        _loaders(path)[loader]()
    assert calls == [True] and not marker.exists()


def test_fetch_weights_records_sha256sums_and_a_changed_file_is_refused(fake_spec, tmp_path, monkeypatch, capsys):
    """`photostyle fetch-weights` (the login-node step) writes each file's full digest to
    SHA256SUMS; a file that later differs from it is refused, even without a published digest."""
    from photostyle.cli import main

    spec, src, state, digest = fake_spec
    unpublished = W.WeightSpec("tiny-test", "url", spec.url, spec.filename)  # no published digest to check
    monkeypatch.setitem(W.REGISTRY, "tiny-test", unpublished)
    monkeypatch.setattr(W, "_cache_candidates", lambda s: [src])  # found in the torch cache: no network
    wdir = tmp_path / "weights"
    assert main(["fetch-weights", "--weights-dir", str(wdir), "tiny-test"]) == 0
    assert f"{digest}  tiny-test" in capsys.readouterr().out
    assert W.read_sums(wdir) == {spec.filename: digest}
    assert (wdir / "SHA256SUMS").read_text() == f"{digest}  {spec.filename}\n"
    r = W.resolve("tiny-test", "pretrained", wdir, seed=0, download=False)
    assert r.provenance == f"sha256:{digest}"
    torch.save({"conv.weight": torch.zeros(2, 3)}, wdir / spec.filename)  # swapped afterwards
    for mode in ("pretrained", "auto"):
        with pytest.raises(W.ChecksumMismatch, match="recorded in SHA256SUMS"):
            W.resolve("tiny-test", mode, wdir, seed=0, download=False)
