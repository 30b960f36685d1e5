"""Full resolution: per-stage seconds of one photo at 1 MP and 12 MP (and more), per method.

    python benchmarks/full_resolution.py                       # 1 and 12 MP, reinhard mkl fast, 1 and 2 threads
    python benchmarks/full_resolution.py --sizes 50 --threads 2 --methods reinhard

Each (size, method, threads) runs in a fresh process (so its peak memory is its own), on a
generated photo-like JPEG with EXIF: the colour chain as the pipeline runs it, stage by stage,
through the same library calls:

    ingest (decode at the working size) | segment (k-means) | stylize (working size) |
    decode full | lift fit | lift apply | refine (domain transform at full size) |
    png io (refine's full-size PNG written, read back) | metrics (at the working size) |
    export (JPEG with EXIF/ICC at full size)

and prints seconds per stage, the chain's total and per-megapixel cost, the lift's MP/s (and,
as ``again``, for a further result of the same photo written into the same buffer, as refine and
export do for every style and method of a photo), the
process's peak memory (before the direct full-size run), and the quality of the lift: PSNR of the lifted result against the
method computed directly at full size (``full-size PSNR``; only where that fits: colour
methods at any size, ``fast`` to ``--full-max-mp``). ``fast`` runs a TransformerNet with
random initialisation (no trained model here): a CNN's spatially varying output, not a style.
reinhard and mkl are lifted by the colour map they record, as in the pipeline
(``--no-colour-maps``: by a fitted LUT, ``lift.colour_maps: false``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "tests"))

STAGES = ("ingest", "segment", "stylize", "decode full", "lift fit", "lift apply", "refine", "png io", "metrics", "export")


def photo_bytes(megapixels: float) -> bytes:
    """A photo-like JPEG: smooth colour fields, edges, fine texture and sensor-like noise."""
    import io

    import numpy as np
    from PIL import Image

    from conftest import smooth_photo

    h = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    w = int(h * 4 / 3)
    base = np.asarray(Image.fromarray(smooth_photo(300, 400, seed=1)).resize((w, h), Image.Resampling.BICUBIC))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    texture = 6 * np.sin(xx / 3.0) * np.sin(yy / 5.0)  # fine detail the working size cannot hold
    edges = 40 * ((xx // (w / 7) + yy // (h / 5)) % 2)  # hard region boundaries
    img = base + texture[..., None] + edges[..., None] * np.array([0.6, 0.3, -0.4]) + rng.normal(0, 2, (h, w, 3))
    ex = Image.Exif()
    ex[0x0110] = "Benchmark"
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92, exif=ex.tobytes())
    return buf.getvalue()


def psnr(a, b) -> float:
    import numpy as np

    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


def one(megapixels: float, method: str, threads: int, work_mp: float, full_max_mp: float, maps: bool = True) -> dict:
    import numpy as np
    import torch

    torch.manual_seed(0)
    from photostyle.core.device import apply_threads

    apply_threads(threads)
    from photostyle.core.deliver import source_metadata, write_deliverable
    from photostyle.core.photo import PhotoLimits, decode_photo, working_size
    from photostyle.core.tensors import to_tensor, to_uint8
    from photostyle.nets.segmenters import KMeansSegmenter
    from photostyle.ops import lift as L
    from photostyle.ops.colour import ColourMap, mkl, reinhard
    from photostyle.ops.domain_transform import detail_layer, detail_transfer
    from photostyle.ops.measures import image_metrics, lab_sample, projected_quantiles, projections

    from conftest import smooth_photo

    data = photo_bytes(megapixels)
    src = Path(f"/tmp/photostyle_bench_{megapixels}.jpg")
    src.write_bytes(data)
    limits = PhotoLimits(max_megapixels=250, work_megapixels=work_mp, max_decode_megapixels=250)
    style = to_tensor(np.clip(smooth_photo(300, 400, seed=7) * np.array([1.1, 0.9, 0.6]), 0, 255).astype(np.uint8))
    if method == "fast":
        from photostyle.nets.fastnet import TransformerNet, stylize_photo

        net = TransformerNet().eval()

        def run(x):
            with torch.no_grad():
                return stylize_photo(net, x), None
    else:
        fn = {"reinhard": reinhard, "mkl": mkl}[method]

        def run(x):  # the colour methods' result and their recorded colour map (as stored in the PNG)
            out, cmap = fn(x, style, with_map=True)
            return out, ColourMap.from_json(cmap.to_json())

    t: dict[str, float] = {}

    def timed(name, f):
        t0 = time.perf_counter()
        r = f()
        t[name] = time.perf_counter() - t0
        return r

    work, _ = timed("ingest", lambda: decode_photo(data, limits))
    timed("segment", lambda: KMeansSegmenter(3, 0.0, 20, 512, 0).segment(work, {"id": "x"}))
    stylised, cmap = timed("stylize", lambda: run(to_tensor(work)))
    stylised = to_uint8(stylised)
    full, _ = timed("decode full", lambda: decode_photo(data, limits, full=True))
    if full.shape == work.shape:  # at its working size already: nothing to lift (as in the pipeline)
        model, lifted = None, to_tensor(stylised)
        t["lift fit"] = t["lift apply"] = again = 0.0
    else:
        model = timed("lift fit", lambda: L.fit(working_size(full, limits), stylised, colour_map=cmap, colour_maps=maps))
        L.apply(model, full[:8])  # the kernel's compilation (cached on disk after the first run) is not lift time
        lifted = timed("lift apply", lambda: L.apply(model, full))
        t0 = time.perf_counter()  # a further result of the same photo, into the same buffer (as refine and export do)
        L.apply(model, full, out=lifted)
        again = time.perf_counter() - t0

    def refine():
        content = to_tensor(full)
        dt = {"sigma_spatial": 60, "sigma_range": 1.0, "iterations": 3, "variant": "rf"}
        return to_uint8(detail_transfer(lifted, content, detail=detail_layer(content, **dt), **dt))

    refined = timed("refine", refine)

    def png_io():  # refine writes its full-resolution PNG; metrics and export read it back
        from photostyle.core.io import read_rgb, write_png_atomic

        dest = Path(f"/tmp/photostyle_bench_refined_{megapixels}.png")
        write_png_atomic(dest, refined)
        return read_rgb(dest)

    timed("png io", png_io)
    dirs = projections(16, 0)
    style_q = projected_quantiles(lab_sample(to_uint8(style), 16384, np.random.default_rng(0)), dirs)
    timed("metrics", lambda: image_metrics(working_size(refined, limits), work, style_q, dirs, 16384, 0))
    timed("export", lambda: write_deliverable(f"/tmp/photostyle_bench_out_{megapixels}.jpg", refined, "jpeg",
                                              source_metadata(src), {"photostyle:bench": "1"}))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the chain's peak, before the direct run below
    out = {"mp": megapixels, "method": method, "threads": threads, "stages": t, "peak_rss_mb": peak, "apply_again": again,
           "map": model is not None and model.colour_map is not None,
           "lut": model is not None and model.table is not None,
           "local": model is not None and model.coef is not None and not model.upsampled,
           "upsample": model is not None and model.upsampled}
    if model is not None and (megapixels <= full_max_mp or method != "fast"):  # the method run directly at full size, for the lift's quality
        direct = to_uint8(run(to_tensor(full))[0])
        out["psnr_full"] = psnr(to_uint8(lifted), direct)
        from PIL import Image

        upsampled = Image.fromarray(stylised).resize((full.shape[1], full.shape[0]), Image.Resampling.BILINEAR)
        out["psnr_upsampled"] = psnr(np.asarray(upsampled), direct)  # bilinear upsampling of the working-size result
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1, 12], help="megapixels")
    ap.add_argument("--methods", nargs="+", default=["reinhard", "mkl", "fast"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work-megapixels", type=float, default=1.5)
    ap.add_argument("--full-max-mp", type=float, default=4, help="largest size at which fast also runs at full size")
    ap.add_argument("--no-colour-maps", action="store_true", help="lift reinhard/mkl by a fitted LUT, not their recorded map (lift.colour_maps: false)")
    ap.add_argument("--one", nargs=3, metavar=("MP", "METHOD", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        mp, method, threads = float(args.one[0]), args.one[1], int(args.one[2])
        print(json.dumps(one(mp, method, threads, args.work_megapixels, args.full_max_mp, not args.no_colour_maps)))
        return
    head = f"{'MP':>5} {'method':9} {'thr':>3} " + " ".join(f"{s[:10]:>10}" for s in STAGES) + \
        f" {'total s':>8} {'s/MP':>6} {'lift MP/s':>9} {'again':>6} {'peak MB':>8} {'PSNR lift':>9} {'PSNR bilin':>10}  model"
    print(head)
    for threads in args.threads:
        for method in args.methods:
            for mp in args.sizes:
                proc = subprocess.run([sys.executable, __file__, "--one", str(mp), method, str(threads),
                                       "--work-megapixels", str(args.work_megapixels),
                                       "--full-max-mp", str(args.full_max_mp)]
                                      + (["--no-colour-maps"] if args.no_colour_maps else []), capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{mp:5g} {method:9} {threads:3d} failed: {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                st = r["stages"]
                total = sum(st.values())
                lift_rate = mp / st["lift apply"] if st["lift apply"] else float("nan")
                again_rate = mp / r["apply_again"] if r["apply_again"] else float("nan")
                model = "+".join(k for k in ("map", "lut", "local", "upsample") if r.get(k)) or "not lifted"
                print(f"{mp:5g} {method:9} {threads:3d} " + " ".join(f"{st[s]:10.2f}" for s in STAGES)
                      + f" {total:8.2f} {total / mp:6.2f} {lift_rate:9.1f} {again_rate:6.1f} {r['peak_rss_mb']:8.0f}"
                      + f" {r.get('psnr_full', float('nan')):9.2f} {r.get('psnr_upsampled', float('nan')):10.2f}  {model}",
                      flush=True)


if __name__ == "__main__":
    main()
