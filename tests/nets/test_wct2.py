"""WCT2: wavelet pooling, the published checkpoints' layout, the method (photostyle.nets.wct2)."""

import pytest
import torch

from conftest import make_method, smooth_photo, stylise
from photostyle.core.weights import REGISTRY, resolve
from photostyle.methods.base import Artifact
from photostyle.nets import wct2
from photostyle.nets.vgg import VGGFeatures
from photostyle.ops.wct import feature_stats


def test_wavelet_pool_then_unpool_reconstructs_exactly():
    x = torch.randn(2, 5, 14, 22, dtype=torch.float64)
    pool, unpool = wct2.WavePool(5).double(), wct2.WaveUnpool(5, "sum").double()
    bands = pool(x)
    assert all(b.shape == (2, 5, 7, 11) for b in bands)
    assert torch.allclose(unpool(*bands), x, atol=1e-10, rtol=0)
    # the low band is the 2x2 mean times 2 (orthonormal Haar); the high bands of a flat map vanish
    flat = torch.full((1, 1, 4, 4), 3.0, dtype=torch.float64)
    ll, lh, hl, hh = wct2.WavePool(1).double()(flat)
    assert torch.allclose(ll, torch.full_like(ll, 6.0)) and all(b.abs().max() == 0 for b in (lh, hl, hh))


def _published_layout(option):
    """Key -> shape of clovaai/WCT2's wave_encoder/decoder_<option>_l4.pth (their model.py)."""
    conv = lambda cin, cout, k=3: {"weight": (cout, cin, k, k), "bias": (cout,)}  # noqa: E731
    bands = lambda c: {f"{b}.weight": (c, 1, 2, 2) for b in ("LL", "LH", "HL", "HH")}  # noqa: E731
    enc = {"conv0": conv(3, 3, 1), "conv1_1": conv(3, 64), "conv1_2": conv(64, 64), "conv2_1": conv(64, 128),
           "conv2_2": conv(128, 128), "conv3_1": conv(128, 256), "conv3_2": conv(256, 256),
           "conv3_3": conv(256, 256), "conv3_4": conv(256, 256), "conv4_1": conv(256, 512),
           "pool1": bands(64), "pool2": bands(128), "pool3": bands(256)}
    m, s = (5, "_2") if option == "cat5" else (1, "")
    dec = {"conv4_1": conv(512, 256), "recon_block3": bands(256), f"conv3_4{s}": conv(256 * m, 256),
           "conv3_3": conv(256, 256), "conv3_2": conv(256, 256), "conv3_1": conv(256, 128),
           "recon_block2": bands(128), f"conv2_2{s}": conv(128 * m, 128), "conv2_1": conv(128, 64),
           "recon_block1": bands(64), f"conv1_2{s}": conv(64 * m, 64), "conv1_1": conv(64, 3)}
    flat = lambda d: {f"{k}.{p}": shape for k, v in d.items() for p, shape in v.items()}  # noqa: E731
    return flat(enc), flat(dec)


@pytest.mark.parametrize("option", wct2.OPTIONS)
def test_a_state_dict_with_the_published_keys_and_shapes_loads_strictly(tmp_path, option):
    enc_layout, dec_layout = _published_layout(option)
    gen = torch.Generator().manual_seed(0)
    enc_state = {k: torch.randn(shape, generator=gen) for k, shape in enc_layout.items()}
    dec_state = {k: torch.randn(shape, generator=gen) for k, shape in dec_layout.items()}
    wct2.WaveEncoder(option).load_state_dict(enc_state, strict=True)
    torch.save(dec_state, tmp_path / "wave_decoder.pth")  # a published checkpoint is a bare state dict
    dec, meta = wct2.load_decoder(tmp_path / "wave_decoder.pth", torch.device("cpu"))
    assert dec.option == option and meta == {"source": "published"}
    assert set(dec.state_dict()) == set(dec_layout)
    for part in ("encoder", "decoder"):
        spec = REGISTRY[f"wct2-{part}-{option}"]
        assert spec.url.startswith("https://github.com/clovaai/WCT2/") and spec.filename == f"wave_{part}_{option}_l4.pth"


def _encoder(option="cat5"):
    vgg = VGGFeatures("vgg19", resolve("vgg19-imagenet", "random", "-", 0), 0, "relu4_1")
    return wct2.WaveEncoder.from_vgg19(vgg.features, option).eval()


@pytest.mark.parametrize("option", wct2.OPTIONS)
def test_encoder_skips_and_decoder_shapes(option):
    enc, dec = _encoder(option), wct2.WaveDecoder(option).eval()
    x = torch.rand(1, 3, 48, 64)
    skips: dict = {}
    with torch.no_grad():
        f = enc(x, skips)
        assert f.shape == (1, 512, 6, 8)
        assert [b.shape[-2:] for b in skips["pool1"]] == [(24, 32)] * 3
        assert dec(f, skips).shape == x.shape


def _method(tmp_path, option="cat5", **params):
    torch.manual_seed(0)
    path = tmp_path / "decoder.pt"
    wct2.save_decoder(path, wct2.WaveDecoder(option), {"encoder": "vgg19=random, seed 0"})
    art = Artifact("decoder", f"wave_{option}/relu4_1", None, (("family", f"wave_{option}"), ("level", 4)))
    return make_method("wct2", {"option": option, **params}, artifacts={art: path})


def test_wct_on_the_low_band_matches_the_style_covariance(tmp_path):
    """The encoder-level transform at relu2_1 (computed from pool1's low band): the content's
    features then carry the style's mean and covariance."""
    m = _method(tmp_path, transfer_at=["encoder"])
    enc, dec = m._models()
    with torch.no_grad():  # random VGG weights leave dead channels (rank-deficient features): keep them alive
        for name in ("conv1_1", "conv1_2", "conv2_1"):
            getattr(enc, name).bias.fill_(1.0)
    content = torch.from_numpy(smooth_photo(96, 128, seed=1)).permute(2, 0, 1)[None].float() / 255
    style = torch.from_numpy(smooth_photo(96, 96, seed=2)).permute(2, 0, 1)[None].float() / 255
    state = m.prepare_style(style, "s")
    s_enc, _, _ = m._style_features(state, enc, dec)
    from photostyle.ops.wct import transform

    x, skips = content, {}
    with torch.no_grad():
        for level in (1, 2):
            x = enc.encode(x, skips, level)
        t = transform(x.double(), s_enc[2].double(), "wct", 1e-12, None, {}, key=("enc", 2))
    mu_t, cov_t = feature_stats(t[0].reshape(128, -1))
    mu_s, cov_s = feature_stats(s_enc[2][0].reshape(128, -1))
    scale = float(cov_s.abs().max())
    assert torch.allclose(mu_t, mu_s, atol=1e-6 * scale ** 0.5 + 1e-9)
    # within 1 % of the style's largest entry (a channel that stays dead in the content cannot
    # take the style's variance), where the content's own covariance is far off
    assert torch.allclose(cov_t, cov_s, atol=1e-2 * scale), float((cov_t - cov_s).abs().max() / scale)
    _, cov_c = feature_stats(x[0].double().reshape(128, -1))
    assert float((cov_c - cov_s).abs().max()) > 0.1 * scale


@pytest.mark.parametrize("size", [(37, 51), (40, 64)])
def test_odd_photo_sizes_keep_their_size_and_runs_are_deterministic(tmp_path, size):
    m = _method(tmp_path)
    content = torch.from_numpy(smooth_photo(*size, seed=3)).permute(2, 0, 1)[None].float() / 255
    style = torch.from_numpy(smooth_photo(50, 50, seed=4)).permute(2, 0, 1)[None].float() / 255
    a, b = stylise(m, content, style), stylise(m, content, style)
    assert a.shape == content.shape and torch.equal(a, b)
    assert "vgg19-imagenet=random, seed 0" in m.provenance("s") and "decoder/wave_cat5/relu4_1=sha256:" in m.provenance("s")


def test_decoder_training_lowers_the_reconstruction_loss(tmp_path):
    from photostyle.core.io import read_csv_dicts

    photos = [smooth_photo(40, 48, seed=i) for i in range(3)]
    cfg = {"seed": 0, "image_size": 32, "batch_size": 2, "steps": 12, "learning_rate": 1e-3, "pixel_weight": 1.0,
           "feature_weight": 0.0, "checkpoint_every": 100, "log_every": 100}
    wct2.train_decoder("sum", _encoder("sum"), photos, cfg, tmp_path / "m.pt", tmp_path / "c.pt", tmp_path / "l.csv",
                       {"encoder": "vgg19=random, seed 0"}, torch.device("cpu"))
    rows = read_csv_dicts(tmp_path / "l.csv")
    first, last = float(rows[0]["reconstruction"]), float(rows[-1]["reconstruction"])
    assert last < 0.7 * first, (first, last)
    dec, meta = wct2.load_decoder(tmp_path / "m.pt", torch.device("cpu"))
    assert dec.option == "sum" and meta["encoder"] == "vgg19=random, seed 0"
