"""Photos per second of stylisation methods at a given size, on this machine's CPU (or CUDA).

    python benchmarks/method_speed.py --methods reinhard mkl quilting wct2 --mp 1

Each method stylises a generated photo-like image of ``--mp`` megapixels with a 512 px style
photo, ``--repeat`` times after one warm-up call (style statistics and networks are made in the
warm-up, as a stylize job makes them once per style). Networks run with random initialisation
(no pretrained or trained weights here): their speed is that of the real networks, their
output is not a stylisation. ``wct2`` gets an untrained decoder of its option, ``munit`` untrained networks of the default
architecture with a random style code.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["reinhard", "mkl", "quilting", "wct2", "munit"])
    ap.add_argument("--mp", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from conftest import make_method, smooth_photo
    from photostyle.core.device import apply_threads
    from photostyle.methods.base import Artifact

    threads = apply_threads(args.threads or None)
    h = int((args.mp * 1e6 * 3 / 4) ** 0.5)
    w = int(h * 4 / 3)
    img = np.asarray(Image.fromarray(smooth_photo(300, 400, seed=1)).resize((w, h), Image.Resampling.BICUBIC))
    content = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    style = torch.from_numpy(smooth_photo(384, 512, seed=2)).permute(2, 0, 1)[None].float() / 255
    print(f"{w}x{h} ({args.mp:g} MP), {threads} threads, {torch.__version__}")
    print(f"{'method':10} {'s/photo':>8} {'photos/s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.methods:
            artifacts = None
            if name == "wct2":
                from photostyle.nets import wct2

                path = Path(tmp) / "wave.pt"
                wct2.save_decoder(path, wct2.WaveDecoder("cat5"), {"encoder": "vgg19=random, seed 0"})
                artifacts = {Artifact("decoder", "wave_cat5/relu4_1", None,
                                      (("family", "wave_cat5"), ("level", 4))): path}
            params = None
            if name == "munit":  # the default architecture (translation section), untrained
                from photostyle.config import validate_config
                from photostyle.nets import munit

                cfg = {**validate_config({})["translation"], "seed": 0}
                path = Path(tmp) / "munit.pt"
                munit.save_model(path, munit.Munit(cfg), cfg, {})
                artifacts = {Artifact("munit", "bench", None, (("domain", "bench"),)): path}
                params = {"domain": "bench", "guidance": "random"}
            m = make_method(name, params, artifacts=artifacts)
            state = m.prepare_style(style, "style")
            with torch.no_grad():
                m(content, state)  # warm-up: networks and style statistics
                t0 = time.perf_counter()
                for _ in range(args.repeat):
                    m(content, state)
            s = (time.perf_counter() - t0) / args.repeat
            print(f"{name:10} {s:8.2f} {1 / s:9.3f}", flush=True)


if __name__ == "__main__":
    main()
