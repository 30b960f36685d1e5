""".cube LUT export (photostyle.ops.lut), checked against Pillow's ImageFilter.Color3DLUT, an
implementation that is not ours: a LUT of a global colour map, written, read back and applied by
Pillow to the content photo, gives the pipeline's own stored result (to_uint8 of the method's
output) within 1/255 RMS; written in the wrong order it does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from conftest import REPO, sample_photo
from photostyle.core.tensors import to_tensor, to_uint8
from photostyle.ops.colour import ColourMap, RegionMap, mkl, reinhard
from photostyle.ops.lut import apply_table, colour_map_table, cube_text, lattice, read_cube

LEVEL = 1 / 255  # one 8-bit level, in [0, 1] units
METHODS = {"reinhard": reinhard, "mkl": mkl}


def _style_photo(name: str = "golden_hour.jpg") -> np.ndarray:
    return np.asarray(Image.open(REPO / "data" / "styles" / name).convert("RGB"))


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    """RMS over all pixels and channels of two images in [0, 1] units."""
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def _pillow(image: np.ndarray, size: int, table: np.ndarray) -> np.ndarray:
    """``image`` through Pillow's Color3DLUT with the flat table (channels fastest), in [0, 1]."""
    lut = ImageFilter.Color3DLUT(size, np.ascontiguousarray(table, dtype=np.float64).reshape(-1), channels=3)
    return np.asarray(Image.fromarray(image).filter(lut), dtype=np.float64) / 255.0


@pytest.fixture(scope="module")
def fitted():
    """Content photo (coffee, 320x213), and per method (pipeline result in [0, 1], ColourMap),
    fitted from the content to a real style photo (golden hour)."""
    content = sample_photo()
    ct, st = to_tensor(content), to_tensor(_style_photo())
    out = {}
    for name, fn in METHODS.items():
        image, cmap = fn(ct, st, with_map=True)
        assert len(cmap.regions) == 1 and cmap.regions[0].labels is None  # a global map: no masks
        out[name] = (to_uint8(image).astype(np.float64) / 255.0, cmap)
    return content, out


def _through_file(cmap: ColourMap, size: int) -> tuple[int, np.ndarray]:
    size_read, table, _, _ = read_cube(cube_text(colour_map_table(cmap, cmap.regions[0], size), size, "t", []))
    return size_read, table


@pytest.mark.parametrize("method", list(METHODS))
def test_pillow_applies_the_exported_cube_like_the_pipeline(fitted, method):
    content, maps = fitted
    expected, cmap = maps[method]
    rms = {}
    for size in (33, 17):
        size_read, table = _through_file(cmap, size)
        assert size_read == size
        rms[size] = _rms(_pillow(content, size_read, table), expected)
    print(f"{method}: Pillow through the .cube vs the pipeline's result, RMS "
          f"{rms[33] / LEVEL:.3f}/255 at 33 points, {rms[17] / LEVEL:.3f}/255 at 17")
    assert rms[33] < LEVEL, f"{method}: RMS {rms[33] / LEVEL:.3f}/255 at 33 points"
    if method == "reinhard":  # a nonlinear map: the lattice's interpolation error shows at 17 points
        assert rms[17] > rms[33]


@pytest.mark.parametrize("method", list(METHODS))
def test_apply_table_agrees_with_pillow(fitted, method):
    content, maps = fitted
    size, table = _through_file(maps[method][1], 33)
    ours = apply_table(content, size, table)
    assert ours.shape == content.shape and ours.dtype == np.float64
    rms = _rms(ours, _pillow(content, size, table))
    print(f"{method}: apply_table vs Pillow, RMS {rms / LEVEL:.3f}/255")
    assert rms < LEVEL


def test_apply_table_returns_the_table_at_lattice_colours():
    """Size 16: 255 / 15 = 17, so the uint8 levels 17 k are lattice points; there the
    interpolation is the table row itself (row r + 16 g + 256 b)."""
    size = 16
    rng = np.random.default_rng(0)
    table = rng.uniform(-0.2, 1.2, size=(size ** 3, 3))
    idx = rng.integers(0, size, size=(20, 30, 3))
    out = apply_table((idx * 17).astype(np.uint8), size, table)
    rows = idx[..., 0] + size * idx[..., 1] + size ** 2 * idx[..., 2]
    np.testing.assert_allclose(out, table[rows], rtol=0, atol=1e-12)


def test_the_table_order_matters(fitted):
    """Written blue fastest instead of red fastest, the same table makes Pillow miss the
    pipeline's result by far more than a level: the first test can fail on the order."""
    content, maps = fitted
    for method, (expected, cmap) in maps.items():
        size, table = _through_file(cmap, 33)
        blue_fastest = table.reshape(size, size, size, 3).transpose(2, 1, 0, 3).reshape(-1, 3)
        rms = _rms(_pillow(content, size, blue_fastest), expected)
        print(f"{method}: blue-fastest table, RMS {rms / LEVEL:.1f}/255")
        assert rms > 10 * LEVEL


def test_lattice_order_is_red_fastest_as_in_pillow():
    pts = lattice(3)
    assert pts.shape == (27, 3) and pts.dtype == np.float64
    np.testing.assert_array_equal(pts[[0, 1, 2, 3, 9, 26]],
                                  [[0, 0, 0], [0.5, 0, 0], [1, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [1, 1, 1]])
    # Pillow's own generator (for b: for g: for r:) gives the same order
    pil = ImageFilter.Color3DLUT.generate(5, lambda r, g, b: (r, g, b))
    np.testing.assert_allclose(np.asarray(pil.table, dtype=np.float64).reshape(-1, 3), lattice(5), atol=1e-7)


def test_cube_text_round_trips_through_read_cube():
    size = 5
    rng = np.random.default_rng(1)
    table = rng.uniform(0, 1, size=(size ** 3, 3))
    comments = ["photostyle reinhard map", "style: golden_hour.jpg  strength 1.0"]
    text = cube_text(table, size, "golden hour", comments)
    assert text == cube_text(table.copy(), size, "golden hour", list(comments))  # deterministic
    lines = text.splitlines()
    assert lines[:6] == ['TITLE "golden hour"', "# photostyle reinhard map", "# style: golden_hour.jpg  strength 1.0",
                         "LUT_3D_SIZE 5", "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    assert len(lines) == 6 + size ** 3 and text.endswith("\n")
    assert all(len(line.split()) == 3 and all(len(v.split(".")[1]) == 6 for v in line.split()) for line in lines[6:])
    size_read, table_read, title, comments_read = read_cube(text)
    assert size_read == size and title == "golden hour" and comments_read == comments
    assert table_read.shape == (size ** 3, 3)
    np.testing.assert_allclose(table_read, table, rtol=0, atol=0.5e-6 + 1e-12)


def test_cube_text_sanitises_title_and_multiline_comments():
    table = lattice(2)
    text = cube_text(table, 2, 'the "warm" look', ["first line\nsecond line", "solo"])
    header = text.splitlines()[:4]
    assert header == ["TITLE \"the 'warm' look\"", "# first line", "# second line", "# solo"]
    _, _, title, comments = read_cube(text)
    assert title == "the 'warm' look" and comments == ["first line", "second line", "solo"]
    assert '"' not in cube_text(table, 2, 'a"b\nc', []).splitlines()[0][7:-1]


def test_bad_inputs_raise_value_error():
    good = cube_text(lattice(3), 3, "t", [])
    lines = good.splitlines()
    with pytest.raises(ValueError, match="LUT_3D_SIZE"):  # missing size line
        read_cube("\n".join(line for line in lines if not line.startswith("LUT_3D_SIZE")))
    with pytest.raises(ValueError, match="27 table lines, got 26"):  # a line short
        read_cube("\n".join(lines[:-1]))
    with pytest.raises(ValueError, match="27 table lines, got 28"):  # a line too many
        read_cube(good + "0.5 0.5 0.5\n")
    with pytest.raises(ValueError, match="1D"):
        read_cube('TITLE "curve"\nLUT_1D_SIZE 3\n0 0 0\n0.5 0.5 0.5\n1 1 1\n')
    with pytest.raises(ValueError, match="three|3 numbers"):
        read_cube(good.replace("0.500000 0.000000 0.000000", "0.500000 0.000000", 1))
    with pytest.raises(ValueError, match="domain"):
        read_cube(good.replace("DOMAIN_MAX 1.0 1.0 1.0", "DOMAIN_MAX 2.0 2.0 2.0"))
    for size in (1, 257, 2.5, True, "33"):
        with pytest.raises(ValueError, match="size"):
            cube_text(lattice(2), size, "t", [])
    with pytest.raises(ValueError, match=r"shape \(27, 3\)"):
        cube_text(lattice(2), 3, "t", [])
    with pytest.raises(ValueError, match="non-finite"):
        cube_text(np.full((8, 3), np.nan), 2, "t", [])
    with pytest.raises(ValueError, match="uint8"):
        apply_table(np.zeros((4, 4, 3)), 2, lattice(2))


def test_identity_map_gives_the_identity_lut():
    z = torch.zeros(3, dtype=torch.float64)
    cmap = ColourMap("rgb", 1.0, [RegionMap(None, z, torch.eye(3, dtype=torch.float64), z)])
    np.testing.assert_allclose(colour_map_table(cmap, None, 9), lattice(9), rtol=0, atol=1e-12)
    # in l-alpha-beta the round trip is exact but for black, whose LMS the log clamps to 1e-4
    cmap = ColourMap("lalphabeta", 1.0, [RegionMap(None, z, torch.eye(3, dtype=torch.float64), z)])
    table = colour_map_table(cmap, None, 9)
    np.testing.assert_allclose(table[1:], lattice(9)[1:], rtol=0, atol=1e-9)
    assert np.abs(table[0]).max() < 2e-4
    photo = sample_photo()
    np.testing.assert_array_equal(np.round(_pillow(photo, 9, lattice(9)) * 255).astype(np.uint8), photo)


def test_size_2_lut_of_an_affine_rgb_map_is_exact():
    """MKL (strength 1, an affine map in RGB) to a half-contrast style keeps the RGB cube's corners
    inside [0, 1] (no clipping is reached, checked here): the size-2 LUT is then the affine map at
    the lattice, and trilinear interpolation of an affine map is the map itself at every colour."""
    style = _style_photo().astype(np.float64) * 0.5 + 255 * 0.25
    _, cmap = mkl(to_tensor(sample_photo()), to_tensor(style.round().astype(np.uint8)), with_map=True, strength=1.0)
    r = cmap.regions[0]
    shift, matrix, offset = (t.numpy() for t in (r.shift, r.matrix, r.offset))
    corners = lattice(2)
    affine = (corners - shift) @ matrix.T + offset  # the map, written here with numpy
    assert affine.min() > 0.01 and affine.max() < 0.99  # no clipping reached
    table = colour_map_table(cmap, None, 2)
    np.testing.assert_allclose(table, affine, rtol=0, atol=1e-12)
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    exact = (image.reshape(-1, 3) / 255.0 - shift) @ matrix.T + offset
    np.testing.assert_allclose(apply_table(image, 2, table).reshape(-1, 3), exact, rtol=0, atol=1e-12)
    size, table_read, _, _ = read_cube(cube_text(table, 2, "mkl", []))
    assert np.abs(_pillow(image, size, table_read).reshape(-1, 3) - exact).max() <= 1.01 * LEVEL


def test_a_region_aware_map_needs_a_region():
    z = torch.zeros(3, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    dark = RegionMap((1,), z, 0.5 * eye, z)
    cmap = ColourMap("rgb", 1.0, [RegionMap((0,), z, eye, z), dark], blend_sigma=2.0)
    with pytest.raises(ValueError, match="region"):
        colour_map_table(cmap, None, 3)
    np.testing.assert_allclose(colour_map_table(cmap, dark, 3), 0.5 * lattice(3), atol=1e-12)
