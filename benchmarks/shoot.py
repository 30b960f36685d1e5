"""Grading a shoot: photo scope against folder scope (``stylize.scope``), and LUT fidelity.

    python benchmarks/shoot.py                                  # everything, sheet to /tmp/shoot_bench
    python benchmarks/shoot.py --out-dir /tmp/shoot --megapixels 0.25 --sheet in00 in14 in17
    python benchmarks/shoot.py --skip-lut                       # sections 1, 2 and the sheet only

Photos: the five content photos of ``../shared/eval/dpst-pairs`` (read in place, never copied)
and the sample content photos ``data/content/*.jpg``; styles: each evaluation pair's own style
and the sample styles ``data/styles/*.jpg``. Every photo is downscaled (Lanczos) to at most
``--megapixels`` (the sample photos are smaller and stay at their own size). Luminance is the
mean Rec. 601 luma of the sRGB values, in [0, 1].

1. **Exposures kept apart.** Each content photo becomes a bracket of one scene, -1, 0 and +1 EV
   (changed in linear light: sRGB decoded, scaled by 2**ev, clipped, encoded, rounded to 8 bits).
   For each style and method (reinhard in l-alpha-beta, mkl in RGB, the config's defaults):
   *photo scope* (the peer: ``reinhard()`` / ``mkl()`` per photo, what ``stylize.scope: photo``
   does) against *folder scope* (one :func:`fit_shared` on the pooled samples of
   ``--sample-pixels`` pixels per photo at :func:`grade.sample_positions`, the style's every
   pixel, then :func:`apply_shared` per photo, as the grade stage does). Per bracket: mean
   luminance of the three inputs and of both scopes' outputs; summary: the spread (max - min)
   of each scope as a fraction of the input's, and how many brackets keep the order.
2. **A real mixed folder.** The five evaluation photos (0 EV) pooled as one folder against one
   style (``--folder-style``, default the sample ``golden_hour``): each photo's luminance before,
   at photo and at folder scope, and Spearman's rank correlation of before vs after; a compact
   line for every other sample style and for a folder of all content photos.
3. **LUT fidelity.** Every content photo (0 EV) against every sample style (and each
   evaluation photo against its own style), global reinhard and mkl maps at photo scope: the
   map's table at 33 and 65 points written as ``.cube`` text and read back
   (:func:`cube_text` -> :func:`read_cube`), applied by Pillow's ``ImageFilter.Color3DLUT``
   (trilinear), compared with the pipeline's own 8-bit result (``to_uint8`` of the method's
   output): RMS in 8-bit levels per photo x style x method x size, the count within 1 level,
   the worst cases with their RMS over near-black pixels (max channel < 32) and over the rest.
   The same for the folder-scope fits (the shared global map, applied to each exposure) of the
   sheet's brackets.
4. A contact sheet (``--out-dir``/shoot_sheet.png): for the ``--sheet`` brackets (own style,
   reinhard) rows of inputs, photo-scope outputs and folder-scope outputs, mean luminance under
   each thumbnail.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

EVAL = REPO.parent / "shared" / "eval" / "dpst-pairs"
EVS = (-1, 0, 1)
LEVEL = 1 / 255
DARK = 32  # a pixel whose max channel is below this 8-bit level counts as near-black


# --- photos -------------------------------------------------------------------------------
def load(path: Path, megapixels: float) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = (megapixels * 1e6 / (w * h)) ** 0.5
        if scale < 1:
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
        return np.asarray(im).copy()


def expose(img: np.ndarray, ev: float) -> np.ndarray:
    """``img`` with its light scaled by ``2**ev`` in linear sRGB, clipped, encoded, rounded."""
    x = img.astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * 2.0 ** ev
    lin = np.clip(lin, 0.0, 1.0)
    enc = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(enc * 255.0).astype(np.uint8)


def luma(img) -> float:
    """Mean Rec. 601 luma in [0, 1] of an ``(H, W, 3)`` uint8 array or a ``(1, 3, H, W)`` tensor."""
    if isinstance(img, np.ndarray):
        return float((img.astype(np.float64) / 255.0 @ np.array([0.299, 0.587, 0.114])).mean())
    from photostyle.core.tensors import luminance

    return float(luminance(img.double()).mean())


# --- scopes -------------------------------------------------------------------------------
def methods():
    from photostyle.ops.colour import mkl, reinhard

    return {"reinhard": (reinhard, "lalphabeta"), "mkl": (mkl, "rgb")}


def style_stats(style: np.ndarray, space: str):
    import torch

    from photostyle.ops.colour import GLOBAL, SPACES, PooledStats

    s = PooledStats()
    s.add(GLOBAL, SPACES[space][0](torch.from_numpy(style.reshape(-1, 3).astype(np.float64) / 255.0)))
    return s


def folder_fit(kind: str, space: str, photos: dict[str, np.ndarray], sstats, pixels: int, seed: int):
    """The shared fit of ``photos`` (id -> image), pooled as the grade stage pools them."""
    import torch

    from photostyle.ops.colour import GLOBAL, SPACES, PooledStats, fit_shared
    from photostyle.stages.grade import sample_positions

    c = PooledStats()
    for pid in sorted(photos):
        img = photos[pid]
        pos = sample_positions(img.shape[:2], pixels, seed, pid)
        c.add(GLOBAL, SPACES[space][0](torch.from_numpy(img.reshape(-1, 3)[pos].astype(np.float64) / 255.0)))
    return fit_shared(kind, c, sstats, space=space, photos=len(photos))


def both_scopes(kind: str, photos: dict[str, np.ndarray], style: np.ndarray, pixels: int, seed: int):
    """Per photo id: (photo-scope output, folder-scope output) tensors; and the fit."""
    from photostyle.core.tensors import to_tensor
    from photostyle.ops.colour import apply_shared

    fn, space = methods()[kind]
    st, state = to_tensor(style), {}
    fit = folder_fit(kind, space, photos, style_stats(style, space), pixels, seed)
    out = {}
    for pid, img in photos.items():
        ct = to_tensor(img)
        out[pid] = (fn(ct, st, state=state), apply_shared(ct, fit)[0])
    return out, fit


# --- LUT ----------------------------------------------------------------------------------
def lut_round_trip(cmap, size: int):
    from photostyle.ops.lut import colour_map_table, cube_text, read_cube

    size_r, table, _, _ = read_cube(cube_text(colour_map_table(cmap, None, size), size, "shoot bench"))
    assert size_r == size
    return table


def pillow_lut(img: np.ndarray, size: int, table: np.ndarray) -> np.ndarray:
    from PIL import Image, ImageFilter

    lut = ImageFilter.Color3DLUT(size, table.reshape(-1).tolist(), channels=3)
    return np.asarray(Image.fromarray(img).filter(lut))


def clipped(img: np.ndarray, cmap) -> np.ndarray:
    """Pixels of ``img`` whose mapped colour (before the map's clipping to [0, 1]) leaves [0, 1]."""
    import torch

    from photostyle.ops.colour import SPACES

    fwd, inv = SPACES[cmap.space]
    raw = inv(cmap.regions[0](fwd(torch.from_numpy(img.reshape(-1, 3).astype(np.float64) / 255.0)))).numpy()
    return ((raw < 0.0) | (raw > 1.0)).any(axis=1).reshape(img.shape[:2])


def lut_errors(img: np.ndarray, ref: np.ndarray, got: np.ndarray, clip: np.ndarray) -> dict:
    """RMS (8-bit levels) of ``got`` against ``ref``: overall, on near-black input pixels and the
    rest, on pixels the map clips and the rest."""
    d2 = (got.astype(np.float64) - ref.astype(np.float64)) ** 2
    dark = img.max(axis=2) < DARK

    def rms(sel):
        return float(np.sqrt(d2[sel].mean())) if sel.any() else float("nan")

    return {"rms": float(np.sqrt(d2.mean())), "max": float(np.sqrt(d2.max())), "dark_frac": float(dark.mean()),
            "rms_dark": rms(dark), "rms_rest": rms(~dark), "clip_frac": float(clip.mean()),
            "rms_clip": rms(clip), "rms_unclip": rms(~clip)}


# --- sections -----------------------------------------------------------------------------
def section_brackets(contents, styles_for, style_imgs, args):
    print("\n== 1. Exposures kept apart: -1/0/+1 EV brackets, photo scope (peer) vs folder scope ==")
    print(f"   (mean luma in [0, 1]; folder scope: one fit on {args.sample_pixels} sampled px per photo)")
    hdr = (f"{'content':<22} {'style':<16} {'method':<8} | {'input -1/0/+1':<17} | {'photo scope':<17} | "
           f"{'folder scope':<17} | {'sp_ph':>5} {'sp_fo':>5} {'ord_ph':>6} {'ord_fo':>6}")
    print(hdr)
    print("-" * len(hdr))
    rows, kept = [], {}
    for cname, img in contents.items():
        bracket = {f"{cname}@{ev:+d}EV": expose(img, ev) for ev in EVS}
        ids = list(bracket)
        for sname in styles_for(cname):
            for kind in methods():
                outs, fit = both_scopes(kind, bracket, style_imgs[sname], args.sample_pixels, args.seed)
                li = [luma(bracket[p]) for p in ids]
                lp = [luma(outs[p][0]) for p in ids]
                lf = [luma(outs[p][1]) for p in ids]
                spread = max(li) - min(li)
                r = {"content": cname, "style": sname, "method": kind, "in": li, "photo": lp, "folder": lf,
                     "sp_photo": (max(lp) - min(lp)) / spread, "sp_folder": (max(lf) - min(lf)) / spread,
                     "ord_photo": lp[0] < lp[1] < lp[2], "ord_folder": lf[0] < lf[1] < lf[2],
                     "apart_photo": lp[1] - lp[0] >= LEVEL and lp[2] - lp[1] >= LEVEL,
                     "apart_folder": lf[1] - lf[0] >= LEVEL and lf[2] - lf[1] >= LEVEL,
                     "eval": cname.startswith("in")}
                rows.append(r)
                kept[(cname, sname, kind)] = (bracket, outs, fit)
                f3 = lambda v: "/".join(f"{x:.3f}" for x in v)  # noqa: E731
                print(f"{cname:<22} {sname:<16} {kind:<8} | {f3(li):<17} | {f3(lp):<17} | {f3(lf):<17} | "
                      f"{r['sp_photo']:5.2f} {r['sp_folder']:5.2f} {str(r['ord_photo']):>6} {str(r['ord_folder']):>6}")
    print("\nSummary (spread = max - min mean luma of a bracket's outputs / the inputs'; order = -1 < 0 < +1 EV kept;"
          "\n apart = ordered with each step at least one 8-bit level, 1/255, of mean luma)")
    print(f"{'photos':<8} {'method':<8} {'n':>3} | {'photo: spread median [min, max]':<32} {'order':>7} {'apart':>7} | "
          f"{'folder: spread median [min, max]':<33} {'order':>7} {'apart':>7}")
    for group, sel in (("eval", lambda r: r["eval"]), ("sample", lambda r: not r["eval"]), ("all", lambda r: True)):
        for kind in methods():
            rs = [r for r in rows if sel(r) and r["method"] == kind]
            if not rs:
                continue
            sp = np.array([r["sp_photo"] for r in rs])
            sf = np.array([r["sp_folder"] for r in rs])
            op, of = sum(r["ord_photo"] for r in rs), sum(r["ord_folder"] for r in rs)
            ap, af = sum(r["apart_photo"] for r in rs), sum(r["apart_folder"] for r in rs)
            print(f"{group:<8} {kind:<8} {len(rs):>3} | {np.median(sp):6.3f} [{sp.min():.3f}, {sp.max():.3f}]"
                  f"{'':<11} {op:>3}/{len(rs):<3} {ap:>3}/{len(rs):<3} | {np.median(sf):6.3f} [{sf.min():.3f}, "
                  f"{sf.max():.3f}]{'':<12} {of:>3}/{len(rs):<3} {af:>3}/{len(rs):<3}")
    return rows, kept


def section_folder(contents, style_imgs, args):
    from scipy.stats import spearmanr

    print("\n== 2. A real mixed folder: the five evaluation photos (0 EV) as one folder ==")
    evals = {k: v for k, v in contents.items() if k.startswith("in")}
    print(f"   style: {args.folder_style} (chosen before the run; the sample styles' other lines below)")
    res = {kind: both_scopes(kind, evals, style_imgs[args.folder_style], args.sample_pixels, args.seed)[0]
           for kind in methods()}
    print(f"{'photo':<8} {'before':>7} | {'reinhard photo':>14} {'folder':>7} | {'mkl photo':>9} {'folder':>7}")
    before = {p: luma(img) for p, img in evals.items()}
    after = {kind: {p: (luma(o[0]), luma(o[1])) for p, o in res[kind].items()} for kind in res}
    for p in sorted(evals):
        print(f"{p:<8} {before[p]:7.3f} | {after['reinhard'][p][0]:14.3f} {after['reinhard'][p][1]:7.3f} | "
              f"{after['mkl'][p][0]:9.3f} {after['mkl'][p][1]:7.3f}")
    ps = sorted(evals)

    def rho(kind, i, d=None, b=None):
        d, b = d or after[kind], b or before
        return float(spearmanr([b[p] for p in sorted(d)], [d[p][i] for p in sorted(d)]).statistic)

    for kind in res:
        print(f"Spearman before vs after, {kind}: photo scope {rho(kind, 0):+.2f}, folder scope {rho(kind, 1):+.2f}"
              f"   (luma range before {min(before[p] for p in ps):.3f}-{max(before[p] for p in ps):.3f}; "
              f"photo {min(after[kind][p][0] for p in ps):.3f}-{max(after[kind][p][0] for p in ps):.3f}; "
              f"folder {min(after[kind][p][1] for p in ps):.3f}-{max(after[kind][p][1] for p in ps):.3f})")
    print("\nSpearman (photo scope / folder scope) for the other folders and styles:")
    folders = {"eval (5)": evals, f"all content ({len(contents)})": contents}
    allbefore = {p: luma(img) for p, img in contents.items()}
    out = {}
    for fname, photos in folders.items():
        for sname in sorted(k for k in style_imgs if not k.startswith("in")):
            line = []
            for kind in methods():
                o = both_scopes(kind, photos, style_imgs[sname], args.sample_pixels, args.seed)[0]
                d = {p: (luma(v[0]), luma(v[1])) for p, v in o.items()}
                r = (rho(kind, 0, d, allbefore), rho(kind, 1, d, allbefore))
                out[(fname, sname, kind)] = r
                line.append(f"{kind} {r[0]:+.2f} / {r[1]:+.2f}")
            print(f"  {fname:<18} {sname:<12} " + "   ".join(line))
    return out


def section_lut(contents, style_imgs, kept, args):
    from photostyle.core.tensors import to_tensor, to_uint8

    print("\n== 3. LUT fidelity: .cube (written, read back) through Pillow Color3DLUT vs the pipeline's uint8 ==")
    print(f"   RMS / max in 8-bit levels; dark = input pixels with max channel < {DARK}")
    sizes = args.lut_sizes
    rows = []
    hdr = f"{'content':<22} {'style':<12} {'method':<8} " + " ".join(f"{'rms@' + str(s):>7} {'max@' + str(s):>6}"
                                                                   for s in sizes) + f" {'dark%':>6}"
    print(hdr)
    print("-" * len(hdr))
    sample_styles = sorted(k for k in style_imgs if not k.startswith("in"))
    for cname, img in contents.items():
        ct = to_tensor(img)
        for sname in sample_styles + ([cname] if cname.startswith("in") else []):
            st = to_tensor(style_imgs[sname])
            for kind, (fn, _) in methods().items():
                out, cmap = fn(ct, st, with_map=True)
                ref = to_uint8(out)
                errs, clip = {}, clipped(img, cmap)
                for size in sizes:
                    errs[size] = lut_errors(img, ref, pillow_lut(img, size, lut_round_trip(cmap, size)), clip)
                    rows.append({"content": cname, "style": sname, "method": kind, "size": size, "scope": "photo",
                                 **errs[size]})
                sty = "own" if sname == cname else sname
                print(f"{cname:<22} {sty:<12} {kind:<8} " + " ".join(f"{errs[s]['rms']:7.3f} {errs[s]['max']:6.1f}"
                                                                  for s in sizes)
                      + f" {100 * errs[sizes[0]]['dark_frac']:6.2f}")
    print("\nFolder scope (the shared global map's LUT applied to each exposure of the sheet's brackets, own style):")
    for cname in args.sheet:
        for kind in methods():
            bracket, outs, fit = kept[(cname, cname, kind)]
            cmap = fit.colour_map()
            for size in sizes:
                table = lut_round_trip(cmap, size)
                line = []
                for pid, img in bracket.items():
                    e = lut_errors(img, to_uint8(outs[pid][1]), pillow_lut(img, size, table), clipped(img, cmap))
                    rows.append({"content": pid, "style": cname, "method": kind, "size": size, "scope": "folder", **e})
                    line.append(f"{pid.split('@')[1]} {e['rms']:.3f} (max {e['max']:.0f})")
                print(f"  {cname:<6} {kind:<8} @{size:<3} " + "   ".join(line))
    print("\nSummary: rows within 1 level RMS / total, median RMS, worst RMS")
    for scope in ("photo", "folder"):
        for kind in methods():
            for size in sizes:
                rs = [r for r in rows if r["scope"] == scope and r["method"] == kind and r["size"] == size]
                v = np.array([r["rms"] for r in rs])
                print(f"  {scope:<6} {kind:<8} @{size:<3} {int((v <= 1.0).sum()):>3}/{len(v):<3} "
                      f"median {np.median(v):.3f}  worst {v.max():.3f}")
    print(f"\nWorst cases (RMS > 1 level, or the {args.worst} worst): RMS over near-black input pixels (max channel"
          f" < {DARK}) vs the rest, and over pixels the map clips (leave [0, 1] before clipping) vs the rest:")
    worst = sorted(rows, key=lambda r: -r["rms"])
    worst = worst[:max(args.worst, sum(r["rms"] > 1.0 for r in rows))]
    print(f"  {'content':<22} {'style':<12} {'method':<8} {'scope':<6} {'size':>4} {'rms':>6} {'dark%':>6} "
          f"{'rms dark':>8} {'rms rest':>8} {'clip%':>6} {'rms clip':>8} {'rms rest':>8}")
    for r in worst:
        print(f"  {r['content']:<22} {r['style']:<12} {r['method']:<8} {r['scope']:<6} {r['size']:>4} {r['rms']:6.3f} "
              f"{100 * r['dark_frac']:6.2f} {r['rms_dark']:8.3f} {r['rms_rest']:8.3f} {100 * r['clip_frac']:6.2f} "
              f"{r['rms_clip']:8.3f} {r['rms_unclip']:8.3f}")
    return rows


def contact_sheet(kept, style_imgs, args, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(args.sheet)
    fig, axes = plt.subplots(3 * n, 4, figsize=(4 * 2.6, 3 * n * 2.05))
    for b, cname in enumerate(args.sheet):
        bracket, outs, _ = kept[(cname, cname, "reinhard")]
        ids = list(bracket)
        rows = [("input", [bracket[p] for p in ids]),
                ("photo scope", [outs[p][0] for p in ids]),
                ("folder scope", [outs[p][1] for p in ids])]
        for r, (label, imgs) in enumerate(rows):
            for c, (pid, im) in enumerate(zip(ids, imgs)):
                ax = axes[3 * b + r, c]
                arr = im if isinstance(im, np.ndarray) else im[0].permute(1, 2, 0).clamp(0, 1).numpy()
                ax.imshow(arr)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(f"{pid.split('@')[1]}  L={luma(im):.3f}", fontsize=8, labelpad=2)
                if c == 0:
                    ax.set_ylabel(f"{cname}\n{label}", fontsize=8)
            ax = axes[3 * b + r, 3]
            ax.axis("off")
            if r == 0:
                ax.imshow(style_imgs[cname])
                ax.set_title(f"style ({cname}) L={luma(style_imgs[cname]):.3f}", fontsize=8)
    fig.suptitle("reinhard, own style: -1/0/+1 EV brackets; rows: inputs, photo scope, folder scope", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/shoot_bench"))
    ap.add_argument("--megapixels", type=float, default=0.25, help="downscale every photo to at most this")
    ap.add_argument("--sample-pixels", type=int, default=4096,
                    help="pixels sampled per photo (stylize.scope_sample_pixels)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folder-style", default="golden_hour", help="the style of section 2")
    ap.add_argument("--sheet", nargs="+", default=["in00", "in14", "in17"], help="evaluation photos of the sheet")
    ap.add_argument("--lut-sizes", type=int, nargs="+", default=[33, 65])
    ap.add_argument("--worst", type=int, default=8, help="worst LUT cases listed (at least)")
    ap.add_argument("--skip-lut", action="store_true")
    args = ap.parse_args(argv)
    if not EVAL.is_dir():
        print(f"no evaluation photos at {EVAL}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    contents = {p.stem: load(p, args.megapixels) for p in sorted((EVAL / "content").glob("*.png"))}
    contents.update({p.stem: load(p, args.megapixels) for p in sorted((REPO / "data" / "content").glob("*.jpg"))})
    style_imgs = {p.stem: load(p, args.megapixels) for p in sorted((EVAL / "style").glob("*.png"))}
    sample_styles = sorted(p.stem for p in (REPO / "data" / "styles").glob("*.jpg"))
    style_imgs.update({s: load(REPO / "data" / "styles" / f"{s}.jpg", args.megapixels) for s in sample_styles})
    print("photos (w x h):", ", ".join(f"{k} {v.shape[1]}x{v.shape[0]}" for k, v in contents.items()))
    print("styles (w x h, mean luma):", ", ".join(f"{k} {v.shape[1]}x{v.shape[0]} {luma(v):.3f}"
                                               for k, v in style_imgs.items()))

    def styles_for(cname):
        return ([cname] if cname in style_imgs else []) + sample_styles

    _, kept = section_brackets(contents, styles_for, style_imgs, args)
    t1 = time.perf_counter()
    section_folder(contents, style_imgs, args)
    t2 = time.perf_counter()
    sheet = args.out_dir / "shoot_sheet.png"
    contact_sheet(kept, style_imgs, args, sheet)
    print(f"\ncontact sheet: {sheet}")
    t3 = time.perf_counter()
    if not args.skip_lut:
        section_lut(contents, style_imgs, kept, args)
    t4 = time.perf_counter()
    print(f"\ntime: brackets {t1 - t0:.1f} s, folder {t2 - t1:.1f} s, sheet {t3 - t2:.1f} s, LUT {t4 - t3:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
