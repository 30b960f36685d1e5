"""Export of a colour transform as a 3D LUT in the Adobe / DaVinci Resolve ``.cube`` format.

A 3D LUT samples a colour-in/colour-out function ``f: [0, 1]^3 -> R^3`` on a regular lattice of
``size``³ RGB points; a reader (Resolve, Photoshop, Premiere, ffmpeg's ``lut3d``, Pillow's
``ImageFilter.Color3DLUT``) interpolates between them, trilinearly or tetrahedrally. The ``.cube``
file (Adobe's "Cube LUT Specification 1.0") is plain text::

    TITLE "name"                  optional, double-quoted
    # comment                     any line starting with '#'
    LUT_3D_SIZE 33                N points per axis (the spec allows 2..256)
    DOMAIN_MIN 0.0 0.0 0.0        input value at the first lattice point of each axis
    DOMAIN_MAX 1.0 1.0 1.0        ... and at the last one
    0.000000 0.000000 0.000000    N³ lines: output R G B of each lattice point
    ...

Order of the data lines: the **red index changes fastest, then green, then blue** (line
``r + N g + N² b`` holds ``f(r / (N-1), g / (N-1), b / (N-1))``), as the Adobe spec states. Pillow's
``Color3DLUT`` takes the same order: its docstring says the flat table's "channels are changed
first, then first dimension, then second, then third", where the first dimension is indexed by
the pixel's first channel (R); ``Color3DLUT.generate`` fills it with ``for b: for g: for r:``,
and ``src/libImaging/ColorLUT.c`` (``ImagingColorLUT3D_linear``) indexes the table with strides
``(channels, size1D*channels, size1D*size2D*channels)`` for the input's (R, G, B). So a
``.cube`` table passes to Pillow as it is, with ``size`` and ``channels=3``. (Pillow keeps the
table in 16-bit fixed point, 1/64 of an 8-bit level, and rounds its output to 8 bits.)

What a LUT can carry of this project's colour maps (:class:`photostyle.ops.colour.ColourMap`):

* a **global** map (Reinhard, MKL without segmentation masks; one :class:`RegionMap` with
  ``labels`` None) is a function of the pixel's colour only: its LUT equals the map at the
  lattice points. Between them the reader interpolates: exact for an affine map in RGB (MKL)
  where no clipping is reached (a size-2 LUT is then exact everywhere), an approximation for
  Reinhard's map in log-LMS l-alpha-beta (nonlinear), whose error shrinks with the size (see
  ``tests/ops/test_lut.py`` for the figures at 33 and 17 points). Reinhard's error gathers near
  black: the map is affine in log LMS, so in LMS it is a product of powers (exponents from the
  std ratios, often well below 1), whose slope near 0 is too steep for the lattice's first cell. On a photo with
  few near-black pixels a 33-point LUT is within a fraction of a level (RMS); on one with much
  near-black (the sample astronaut, a night sky) it misses by a few levels RMS even at 33 or 65
  points, nearly all of it in the dark pixels;
* a **region-aware** map is not a colour-in/colour-out function: each pixel blends several
  regions' transforms with per-pixel weights from the segmentation (soft label masks, blurred
  and feathered across region borders), so the same input colour maps to different outputs in
  different places, which no table indexed by colour alone can represent. One LUT per region
  (:func:`colour_map_table` with that region) is exact only inside that region's mask, away from
  the blended borders; applied to a whole photo, each such LUT is wrong outside its region.

All functions are pure (numpy, with torch only to evaluate a :class:`ColourMap`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from photostyle.ops.colour import ColourMap, RegionMap

MIN_SIZE, MAX_SIZE = 2, 256  # LUT_3D_SIZE range of the Adobe Cube LUT spec 1.0
DECIMALS = 6  # digits after the point of each data value (1e-6 is far below an 8-bit level, 1/255)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"LUT size must be an integer in {MIN_SIZE}..{MAX_SIZE}, got {size!r}")
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"LUT size must be in {MIN_SIZE}..{MAX_SIZE} (the .cube spec's LUT_3D_SIZE range), got {size}")
    return int(size)


def _check_table(table, size: int) -> np.ndarray:
    t = np.asarray(table, dtype=np.float64)
    if t.shape != (size ** 3, 3):
        raise ValueError(f"a LUT of size {size} needs a table of shape ({size ** 3}, 3) (size**3 RGB triples, "
                         f"red index fastest), got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("the LUT table has non-finite values (NaN or infinity)")
    return t


def lattice(size: int) -> np.ndarray:
    """The ``size``³ RGB lattice points in ``.cube`` order: ``(size**3, 3)`` float64 in [0, 1].

    Row ``r + size * g + size**2 * b`` is ``(r, g, b) / (size - 1)``: the red index changes
    fastest, then green, then blue.
    """
    # .cube order (Adobe spec: red fastest) = Pillow's Color3DLUT order ("channels are changed
    # first, then first dimension [R], then second [G], then third [B]"; generate(): for b, g, r)
    size = _check_size(size)
    v = np.linspace(0.0, 1.0, size)
    b, g, r = np.meshgrid(v, v, v, indexing="ij")  # C order: the last axis (red) changes fastest
    return np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)


def colour_map_table(cmap: ColourMap, region: RegionMap | None, size: int) -> np.ndarray:
    """``cmap`` applied with ``region``'s transform at the :func:`lattice` points, clipped to
    [0, 1]: ``(size**3, 3)`` float64, the LUT table in ``.cube`` order.

    This is what the pipeline does to a pixel of that colour (:meth:`ColourMap.apply`, strength
    blend included). ``region`` None takes the map's only region; a region-aware map (several
    regions) has no single table, so a region must then be named (the LUT is exact only inside
    that region's mask, see the module docstring).
    """
    import torch

    if region is None:
        if len(cmap.regions) != 1:
            raise ValueError(f"the colour map has {len(cmap.regions)} regions (a region-aware map blends them per "
                             "pixel, which a colour-in/colour-out LUT cannot represent): name one region, "
                             "whose LUT is exact only inside its mask")
        region = cmap.regions[0]
    pts = torch.from_numpy(lattice(size))
    out = cmap.apply(pts, region).detach().cpu().double().numpy()
    return np.clip(out, 0.0, 1.0)


def _fmt_lines(table: np.ndarray) -> str:
    t = np.round(table, DECIMALS) + 0.0  # + 0.0 turns -0.0 (from tiny negatives) into 0.0
    f = f"{{:.{DECIMALS}f}} {{:.{DECIMALS}f}} {{:.{DECIMALS}f}}\n"
    return "".join(f.format(*row) for row in t.tolist())


def cube_text(table: np.ndarray, size: int, title: str = "photostyle", comments: list[str] | tuple[str, ...] = ()) -> str:
    """The ``.cube`` file text of a ``(size**3, 3)`` table in ``.cube`` order (red fastest).

    Lines: ``TITLE "title"`` (a double quote in ``title`` becomes a single quote and line breaks
    become spaces, as the title is one quoted line), each comment as ``# ...`` lines (a comment
    with line breaks gives one ``#`` line per line), ``LUT_3D_SIZE size``, ``DOMAIN_MIN 0.0 0.0
    0.0``, ``DOMAIN_MAX 1.0 1.0 1.0``, then ``size**3`` lines of three numbers with 6 decimals.
    The text depends only on the arguments (same input, same bytes). Raises ValueError for a
    size outside 2..256 or a table of another shape or with non-finite values.
    """
    size = _check_size(size)
    t = _check_table(table, size)
    title = " ".join(str(title).replace('"', "'").splitlines()).strip()
    if isinstance(comments, str):
        comments = [comments]
    lines = [f'TITLE "{title}"']
    for comment in comments:
        parts = str(comment).splitlines() or [""]
        lines += [f"# {p}".rstrip() for p in parts]
    lines += [f"LUT_3D_SIZE {size}", "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    return "\n".join(lines) + "\n" + _fmt_lines(t)


def _floats(parts: list[str], n: int, what: str, lineno: int) -> list[float]:
    if len(parts) != n:
        raise ValueError(f"line {lineno}: {what} needs {n} numbers, got {len(parts)}")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"line {lineno}: {what}: not numbers: {' '.join(parts)!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"line {lineno}: {what}: non-finite number")
    return vals


def read_cube(text: str) -> tuple[int, np.ndarray, str, list[str]]:
    """Parse ``.cube`` text: ``(size, table (size**3, 3) float64 in file order, title, comments)``.

    Blank lines are skipped; ``#`` lines are returned as comments (without the ``#`` and one
    space after it). ``DOMAIN_MIN`` / ``DOMAIN_MAX`` (and Resolve's ``LUT_3D_INPUT_RANGE``) are
    accepted when they state the default domain [0, 1]; the title is "" when there is none.
    Raises ValueError for a 1D LUT (``LUT_1D_SIZE``), a missing or out-of-range ``LUT_3D_SIZE``,
    another domain, an unknown keyword, a keyword after the data, a data line without three
    numbers, or a count of data lines other than size**3.
    """
    size: int | None = None
    title = ""
    comments: list[str] = []
    rows: list[list[float]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:]
            comments.append(body[1:] if body.startswith(" ") else body)
            continue
        key, _, rest = line.partition(" ")
        if key[0].isalpha():
            if rows:
                raise ValueError(f"line {lineno}: keyword {key} after the table data")
            rest = rest.strip()
            if key == "TITLE":
                title = rest[1:-1] if len(rest) >= 2 and rest[0] == rest[-1] == '"' else rest
            elif key == "LUT_1D_SIZE":
                raise ValueError(f"line {lineno}: a 1D LUT (LUT_1D_SIZE): only 3D LUTs are supported")
            elif key == "LUT_3D_SIZE":
                try:
                    size = int(rest)
                except ValueError:
                    raise ValueError(f"line {lineno}: LUT_3D_SIZE needs an integer, got {rest!r}") from None
                _check_size(size)
            elif key in ("DOMAIN_MIN", "DOMAIN_MAX"):
                want = 0.0 if key == "DOMAIN_MIN" else 1.0
                if _floats(rest.split(), 3, key, lineno) != [want] * 3:
                    raise ValueError(f"line {lineno}: {key} {rest}: only the domain [0, 1] is supported")
            elif key == "LUT_3D_INPUT_RANGE":
                if _floats(rest.split(), 2, key, lineno) != [0.0, 1.0]:
                    raise ValueError(f"line {lineno}: {key} {rest}: only the domain [0, 1] is supported")
            else:
                raise ValueError(f"line {lineno}: unknown keyword {key}")
            continue
        rows.append(_floats(line.split(), 3, "a table line", lineno))
    if size is None:
        raise ValueError("no LUT_3D_SIZE line: not a 3D .cube LUT")
    if len(rows) != size ** 3:
        raise ValueError(f"LUT_3D_SIZE {size} needs {size ** 3} table lines, got {len(rows)}")
    return size, np.asarray(rows, dtype=np.float64).reshape(size ** 3, 3), title, comments


def apply_table(image: np.ndarray, size: int, table: np.ndarray) -> np.ndarray:
    """A LUT applied to an ``(H, W, 3)`` uint8 RGB image by trilinear interpolation: ``(H, W, 3)``
    float64 in the table's units (not clipped, not rounded).

    Written from the definition, independently of any LUT library (a reference for tests and
    benchmarks): the colour ``v / 255`` lies at lattice coordinate ``x = v / 255 * (size - 1)``
    on each axis, between points ``i = min(floor(x), size - 2)`` and ``i + 1`` with weight
    ``t = x - i`` on the upper one; the result is the sum over the cell's 8 corners of the
    product of the three axes' weights times the corner's table row ``r + size g + size² b``.
    """
    size = _check_size(size)
    t = _check_table(table, size)
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    x = img.reshape(-1, 3).astype(np.float64) * ((size - 1) / 255.0)  # (N, 3) lattice coordinates
    i0 = np.minimum(np.floor(x).astype(np.int64), size - 2)
    w1 = x - i0  # weight of the upper point per axis
    w0 = 1.0 - w1
    out = np.zeros((x.shape[0], 3), dtype=np.float64)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                idx = (i0[:, 0] + dr) + size * ((i0[:, 1] + dg) + size * (i0[:, 2] + db))
                w = ((w1 if dr else w0)[:, 0] * (w1 if dg else w0)[:, 1] * (w1 if db else w0)[:, 2])
                out += w[:, None] * t[idx]
    return out.reshape(img.shape)
