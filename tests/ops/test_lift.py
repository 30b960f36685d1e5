"""The lift of a working-size stylisation to the full-resolution photo (photostyle.ops.lift)."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from conftest import smooth_photo
from photostyle.core.tensors import to_uint8
from photostyle.ops import colour as C
from photostyle.ops import lift as L
from photostyle.ops.colour import ColourMap, lalphabeta_to_rgb, mkl, reinhard, rgb_to_lalphabeta
from photostyle.ops.regions import Match, build_masks

# a colour matrix + offset that keeps every colour inside [0, 1] (no clipping: a pure affine map)
A = np.array([[0.55, 0.25, 0.05], [0.10, 0.60, 0.15], [0.05, 0.15, 0.55]])
B = np.array([0.10, 0.05, 0.20])


def _pair(h=240, w=360, factor=4, seed=0):
    full = smooth_photo(h, w, seed=seed)
    work = np.asarray(Image.fromarray(full).resize((w // factor, h // factor), Image.Resampling.LANCZOS))
    return full, work


def _affine(img, a=A, b=B):
    return np.clip(np.round((img / 255.0) @ a.T * 255 + b * 255), 0, 255).astype(np.uint8)


def _lifted(work, stylised, full, **kw):
    return to_uint8(L.lift(work, stylised, full, **kw)).astype(int)


@pytest.mark.parametrize("model", ["auto", "lut+local", "lut"])
def test_a_global_colour_matrix_lifts_exactly(model):
    """Lifting a colour matrix computed at the working size equals the matrix applied at full
    size, to the rounding of 8-bit values (1/255)."""
    full, work = _pair()
    d = np.abs(_lifted(work, _affine(work), full, model=model) - _affine(full).astype(int))
    assert d.max() <= 1, (d.max(), (d > 1).mean())


def test_a_smooth_nonlinear_colour_map_lifts_within_a_level():
    """Reinhard's log-LMS statistics transfer (a fixed, non-linear map, here a strong one): within
    a few levels nearly everywhere (the lattice interpolates it; the photo's fine noise holds
    colours the working size lacks, extrapolated from their nearest lattice data); plain
    upsampling of the working-size result is far worse."""
    full, work = _pair()
    pix = lambda a: torch.from_numpy(a.reshape(-1, 3) / 255.0)  # noqa: E731
    lab = rgb_to_lalphabeta(pix(work))
    mean, std = lab.mean(0), lab.std(0)

    def reinhard_map(img):
        out = (rgb_to_lalphabeta(pix(img)) - mean) / std * torch.tensor([0.05, 0.02, 0.03]) + torch.tensor([-0.2, 0.05, 0.02])
        return np.clip(np.round(lalphabeta_to_rgb(out).numpy().reshape(img.shape) * 255), 0, 255).astype(np.uint8)

    ref = reinhard_map(full).astype(int)
    d = np.abs(_lifted(work, reinhard_map(work), full) - ref)
    assert np.percentile(d, 99) <= 3 and d.mean() < 0.22, (d.max(), np.percentile(d, 99), d.mean())
    # the lattice's resolution bounds it: the former default (13 vertices per axis) is further off
    # (finer lattices than 16 leave cells with too little colour variety to fit an affine model)
    coarse = np.abs(_lifted(work, reinhard_map(work), full, lut_size=13) - ref)
    assert np.percentile(coarse, 99) > np.percentile(d, 99) and coarse.mean() > 1.3 * d.mean()
    upsampled = np.asarray(Image.fromarray(reinhard_map(work)).resize(full.shape[1::-1], Image.Resampling.BILINEAR))
    assert np.abs(upsampled.astype(int) - ref).mean() > 5 * d.mean()


def _t(img):
    return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]


def _by_map(cmap, img, labels=None):
    """``img`` through the recorded map at its own size, per label (float64, rounded to 8 bits)."""
    pix = torch.from_numpy(img.reshape(-1, 3) / 255.0)
    out = torch.empty_like(pix)
    flat = np.zeros(len(pix), int) if labels is None else labels.reshape(-1)
    for v in np.unique(flat):
        sel = torch.from_numpy(flat == v)
        out[sel] = cmap.apply(pix[sel], cmap.region_of(None if labels is None else int(v)))
    return np.clip(np.round(out.numpy() * 255), 0, 255).reshape(img.shape).astype(int)


@pytest.mark.parametrize("method,kw", [(reinhard, {}), (reinhard, {"strength": 0.6}), (mkl, {})])
def test_a_methods_own_colour_map_lifts_exactly(method, kw):
    """Reinhard and MKL record their colour map: the lift applies it, so lifting their
    working-size result equals their map applied at full size to 1/255 everywhere (the fitted
    LUT, for comparison, is many levels off where the full-size photo holds colours the working
    size lacks). A stored-and-read map (JSON) is what the stages use."""
    full, work = _pair()
    style = smooth_photo(50, 60, seed=4)
    out, cmap = method(_t(work), _t(style), with_map=True, **kw)
    cmap = ColourMap.from_json(cmap.to_json())
    stylised = to_uint8(out)
    model = L.fit(work, stylised, colour_map=cmap)
    assert model.colour_map is not None and model.table is None and model.coef is None
    ref = _by_map(cmap, full)
    d = np.abs(to_uint8(L.apply(model, full)).astype(int) - ref)
    assert d.max() <= 1 and d.mean() < 0.01, (d.max(), d.mean())
    fitted = np.abs(_lifted(work, stylised, full) - ref)
    assert fitted.max() > 5 and fitted.mean() > 10 * d.mean()
    off = L.fit(work, stylised, colour_map=cmap, colour_maps=False)  # lift.colour_maps: false
    assert off.colour_map is None and off.table is not None


def test_region_colour_maps_lift_exactly_and_blend_where_the_method_blended():
    """Region-aware Reinhard (two regions, each with its own map, blended by the method with soft
    weights): the lift recomputes those weights from the label map, so the map alone explains the
    working-size result (no local model); at full size each region's map holds to 1/255 outside
    the method's own blend (3 sigma), where the fitted LUT is further off."""
    full, work = _pair()
    h, w = work.shape[:2]
    cl = np.zeros((h, w), np.int64)
    cl[:, w // 2:] = 3
    style = np.concatenate([smooth_photo(30, 60, seed=5), smooth_photo(30, 60, seed=6)[..., ::-1]], 0)
    sl = np.zeros(style.shape[:2], np.int64)
    sl[30:] = 3
    masks = build_masks(cl, sl, [Match(0, 0, "same"), Match(3, 3, "same")], "cpu", blur_fraction=0.02)
    out, cmap = reinhard(_t(work), _t(style), masks, with_map=True)
    cmap = ColourMap.from_json(cmap.to_json())
    assert cmap.blend_sigma == masks.blur_sigma > 0
    stylised = to_uint8(out)
    model = L.fit(work, stylised, cl, colour_map=cmap)
    assert model.colour_map is not None and model.coef is None
    full_labels = np.repeat(np.repeat(cl, 4, 0), 4, 1)
    ref = _by_map(cmap, full, full_labels)
    d = np.abs(to_uint8(L.apply(model, full)).astype(int) - ref)
    band = 4 * (3 * masks.blur_sigma + 1)  # the method's blend and the bilinear step, in full-size pixels
    away = np.abs(np.arange(full.shape[1]) + 0.5 - full.shape[1] / 2) > band
    assert away.mean() > 0.8 and d[:, away].max() <= 1, d[:, away].max()
    assert d[:, ~away].max() > 10  # the blend is there: hard region maps would not match it
    fitted = np.abs(_lifted(work, stylised, full, labels=cl) - ref)
    assert fitted[:, away].max() > 3
    cmap.blend_sigma = None  # a map that says nothing of the blend leaves it to the local model
    assert L.fit(work, stylised, cl, colour_map=cmap).coef is not None


def test_a_map_that_does_not_explain_the_result_is_not_used():
    """A result changed after the method (smoothed, say): its recorded map no longer describes it,
    so the lift fits its model instead of trusting the map."""
    full, work = _pair()
    out, cmap = mkl(_t(work), _t(smooth_photo(50, 60, seed=4)), with_map=True)
    blurred = np.asarray(Image.fromarray(to_uint8(out)).filter(ImageFilter.GaussianBlur(2)))
    model = L.fit(work, blurred, colour_map=cmap)
    assert model.colour_map is None


def test_regions_keep_their_own_colour_model_up_to_the_border():
    """Two regions mapped by different matrices: every pixel follows its own region's matrix,
    the ones beside the border too; without the label map the border bleeds."""
    full, work = _pair()
    labels = np.zeros(work.shape[:2], np.int32)
    labels[:, work.shape[1] // 2:] = 7
    a2 = A[::-1, ::-1].copy()
    stylised = np.where(labels[..., None] == 0, _affine(work), _affine(work, a2, B[::-1]))
    full_labels = np.repeat(np.repeat(labels, 4, 0), 4, 1)
    ref = np.where(full_labels[..., None] == 0, _affine(full), _affine(full, a2, B[::-1])).astype(int)
    d = np.abs(_lifted(work, stylised, full, labels=labels) - ref)
    assert d.max() <= 1, d.max()
    bled = np.abs(_lifted(work, stylised, full, model="local") - ref)
    border = slice(full.shape[1] // 2 - 4, full.shape[1] // 2 + 4)
    assert bled[:, border].max() > 10


def test_local_model_follows_a_spatially_varying_stylisation():
    """A stylisation that changes across the photo (a gain ramp over a repeated pattern, so equal
    colours are mapped differently): the local model carries it to full resolution (PSNR > 40 dB
    against the same change applied at full size); a colour LUT alone cannot."""
    full = np.tile(smooth_photo(60, 40, seed=3), (4, 9, 1))
    work = np.asarray(Image.fromarray(full).resize((90, 60), Image.Resampling.LANCZOS))

    def ramp(img):
        gain = np.linspace(0.6, 1.2, img.shape[1])[None, :, None]
        return np.clip(np.round(img * gain), 0, 255).astype(np.uint8)

    err = _lifted(work, ramp(work), full) - ramp(full).astype(int)
    psnr = 10 * np.log10(255 ** 2 / np.mean(err.astype(float) ** 2))
    assert psnr > 40, psnr
    for model in ("lut", "lut+local"):  # a LUT fitted to a spatial change does not carry to full size
        lut = _lifted(work, ramp(work), full, model=model) - ramp(full).astype(int)
        assert np.mean(lut.astype(float) ** 2) > 10 * np.mean(err.astype(float) ** 2), model


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("colour", ["lut", "map", "map+local"])
def test_compiled_kernel_equals_the_reference_and_strips_change_nothing(with_labels, colour):
    full, work = _pair(h=123, w=257, factor=3)  # odd sizes
    labels = (np.arange(work.shape[1])[None, :] * 3 // work.shape[1]).repeat(work.shape[0], 0) if with_labels else None
    if colour == "lut":
        stylised = np.clip(work.astype(int) * np.linspace(0.7, 1.1, work.shape[1])[None, :, None], 0, 255).astype(np.uint8)
        model = L.fit(work, stylised, labels, model="lut+local")
    else:  # a method's own map (Reinhard's log-LMS one, per region with labels), alone or with the local model
        masks = None
        if with_labels:
            style_labels = (np.arange(50)[None, :] * 3 // 50).repeat(40, 0)
            masks = build_masks(labels, style_labels, [Match(k, k, "same") for k in range(3)], "cpu",
                                blur_fraction=0.02)
        out, cmap = reinhard(_t(work), _t(smooth_photo(40, 50, seed=2)), masks, with_map=True)
        model = L.fit(work, to_uint8(out), labels, model="lut" if colour == "map" else "lut+local", colour_map=cmap)
        assert model.colour_map is not None and (model.coef is not None) == (colour == "map+local")
    whole = L.apply_reference(model, full, strip_rows=full.shape[0])
    assert torch.equal(L.apply_reference(model, full, strip_rows=7), whole)
    assert whole.shape == (1, 3, 123, 257)
    # float32 rounding; the map's log and exp are interpolated tables in the kernel (3e-6 measured)
    torch.testing.assert_close(L.apply(model, full), whole, atol=2e-6 if colour == "lut" else 1e-5, rtol=0)


def test_a_photo_at_its_working_size_is_not_lifted():
    full = smooth_photo(40, 50)
    stylised = _affine(full)
    assert np.array_equal(to_uint8(L.lift(full, stylised, full)), stylised)


def test_bad_input_is_named():
    full, work = _pair()
    with pytest.raises(ValueError, match="lift model"):
        L.fit(work, work, model="bilateral")
    with pytest.raises(ValueError, match="differ in size"):
        L.fit(work, work[:-1])


@pytest.mark.parametrize("radius", [0, 1, 3, 40])
def test_window_sums_equal_direct_sums_over_clipped_windows(radius):
    """The fit's compiled window sums (running sums) against a direct sum over each clipped
    window, and against the integral-image reference; radius 40 exceeds the image."""
    x = torch.from_numpy(np.random.default_rng(radius).random((2, 13, 17), dtype=np.float32))
    direct = torch.zeros_like(x)
    for y in range(13):
        for i in range(17):
            direct[:, y, i] = x[:, max(0, y - radius):y + radius + 1, max(0, i - radius):i + radius + 1].sum((1, 2))
    assert torch.allclose(L._box_sum(x, radius), direct, atol=1e-5)
    assert torch.allclose(L.box_sum_reference(x, radius), direct, atol=1e-4)


def test_window_affine_fits_equal_batched_solves():
    """The compiled per-window affine fits (closed-form 3x3 inverse, float64 inside) against
    torch's batched solves in float64, over a region that covers part of the image."""
    rng = np.random.default_rng(1)
    c = torch.from_numpy(rng.random((3, 60, 80), dtype=np.float32))
    p = torch.from_numpy(rng.random((3, 60, 80), dtype=np.float32)) * 0.1 + 0.3 * c[[2, 0, 1]]
    mk = torch.ones(1, 60, 80)
    mk[:, :, 50:] = 0
    sums = L._box_sum(L.window_moments(mk, c, p), 4)
    ours, ref = L._window_affine(sums, 1e-4).double(), L.window_affine_reference(sums.double(), 1e-4)
    assert torch.allclose(ours, ref, atol=1e-6) and ref[:9].abs().max() > 0.1
    assert (ours[:, :, 55:] == 0).all() and (ours[12, :, :50] == 1).all()  # windows without the region: nothing


def test_lut_normal_equations_equal_the_reference():
    """The compiled accumulation of the LUT's per-vertex normal equations against the torch
    reference (trilinear corners in square-root coordinates, index_add), colours 0 and 1 included."""
    rng = np.random.default_rng(2)
    c = torch.from_numpy(np.concatenate([rng.random((5000, 3)), [[0, 0, 0], [1, 1, 1], [1, 0, 0.5]]]))
    s = c @ torch.from_numpy(A.T) + torch.from_numpy(B) + 0.01 * torch.from_numpy(rng.random((len(c), 3)))
    for n in (2, 5, 16):
        gram, rhs = L._normal_equations(c, s, n)
        ref_gram, ref_rhs = L.normal_equations_reference(c, s, n)
        assert torch.allclose(gram, ref_gram, rtol=1e-9, atol=1e-9) and torch.allclose(rhs, ref_rhs, rtol=1e-9, atol=1e-9)
        assert gram[:, 15].sum() == pytest.approx(len(c))  # the weights of each sample sum to one


@pytest.mark.parametrize("scale", [(1.3, 0.8, 1.2), (0.05 / 0.3, 0.02 / 0.05, 0.03 / 0.02)])
def test_the_kernels_log_and_exp_tables_hold_the_map_over_every_colour(scale):
    """The kernel reads a log-scale map's logarithm and exponential from interpolated tables: over
    a lattice of 64³ colours spanning the RGB cube (black and saturated corners included), for a
    mild and a strong Reinhard map, it stays within 1e-4 of the exact map (float64 reference)."""
    levels = np.round(np.linspace(0, 255, 64)).astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(512, 512, 3)
    shift = torch.tensor([-0.5, 0.01, 0.0], dtype=torch.float64)
    cmap = ColourMap("lalphabeta", 1.0, [C.RegionMap(None, shift, torch.diag(torch.tensor(scale, dtype=torch.float64)),
                                                     shift + torch.tensor([0.1, 0.02, -0.01], dtype=torch.float64))])
    work = grid[::2, ::2]
    model = L.fit(work, _by_map(cmap, work).astype(np.uint8), colour_map=cmap, model="lut")
    assert model.colour_map is not None
    exact = L.map_reference(model.colour_map, torch.from_numpy(grid.reshape(-1, 3) / 255.0), torch.zeros(512 * 512, dtype=torch.long))
    got = L.apply(model, grid)[0].reshape(3, -1).T.double()
    assert (got - exact).abs().max() < 1e-4, float((got - exact).abs().max())


def test_apply_into_a_reused_buffer_gives_the_same_result():
    """``apply(..., out=buf)`` (the stages reuse one buffer for every result of a photo) writes
    every pixel: the same values as a fresh output, whatever the buffer held; a buffer of
    another shape is refused."""
    full, work = _pair()
    stylised = np.clip(work.astype(int) * np.linspace(0.7, 1.1, work.shape[1])[None, :, None], 0, 255).astype(np.uint8)
    model = L.fit(work, stylised)
    buf = torch.full((1, 3) + full.shape[:2], float("nan"))
    got = L.apply(model, full, out=buf)
    assert got is buf and torch.equal(got, L.apply(model, full))
    with pytest.raises(ValueError, match="contiguous"):
        L.apply(model, full, out=torch.empty(1, 3, 5, 5))


def _field(h, w):
    """A smooth colour field that ignores the photo (a generator's own output, say)."""
    y, x = np.mgrid[0:h, 0:w]
    y, x = (y + 0.5) / h, (x + 0.5) / w
    rgb = np.stack([0.5 + 0.4 * np.sin(3 * x + 1), 0.5 + 0.4 * np.cos(2 * y), 0.3 + 0.3 * x * y], -1)
    return np.round(rgb * 255).astype(np.uint8)


def _noisy_pair(h=480, w=720, factor=2, seed=5):
    rng = np.random.default_rng(seed)
    full = np.clip(smooth_photo(h, w, seed=seed).astype(int) + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
    work = np.asarray(Image.fromarray(full).resize((w // factor, h // factor), Image.Resampling.LANCZOS))
    return full, work


def test_the_upsample_model_is_the_result_upsampled_bilinearly_within_each_region():
    """``upsample`` gives torch's bilinear upsampling of the result where a pixel's neighbours are
    all of its region, and takes nothing from another region next to a border."""
    full, work = _noisy_pair(120, 180, factor=3)
    stylised = _field(*work.shape[:2])
    up = L.apply(L.fit(work, stylised, model="upsample"), full)
    ref = torch.nn.functional.interpolate(torch.from_numpy(stylised).permute(2, 0, 1)[None].float() / 255,
                                          size=full.shape[:2], mode="bilinear", align_corners=False)
    assert float((up - ref).abs().max()) < 1e-5
    labels = np.zeros(work.shape[:2], np.int32)
    labels[:, work.shape[1] // 2:] = 1
    two = np.where(labels[..., None] == 0, np.uint8(30), np.uint8(220)).repeat(3, -1).astype(np.uint8)
    lifted = to_uint8(L.apply(L.fit(work, two, labels, model="upsample"), full))
    full_labels = np.repeat(np.repeat(labels, 3, 0), 3, 1)
    assert set(np.unique(lifted[full_labels == 0])) == {30} and set(np.unique(lifted[full_labels == 1])) == {220}
    bled = to_uint8(L.apply(L.fit(work, two, model="upsample"), full))  # one region: the border is blurred
    assert len(np.unique(bled)) > 2
