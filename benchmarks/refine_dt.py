"""Domain-transform recursive filter: ours against OpenCV's ``cv2.ximgproc.dtFilter`` (DTF_RF).

    pip install opencv-contrib-python-headless   # benchmark-only dependency (".[bench]")
    python benchmarks/refine_dt.py

Same photo (scikit-image's astronaut, resized), same settings (sigma_s 60, sigma_r 1 on
[0, 1] images, 3 iterations), same run, best of 5. Prints seconds, megapixels/s and the
throughput ratio ours/OpenCV (target >= 1.0), and the largest difference between the two
outputs. On CUDA it also prints our GPU throughput (target >= 500 MP/s at 4 MP).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from photostyle.ops.domain_transform import domain_transform  # noqa: E402

SIZES = {"1 MP": (1155, 866), "4 MP": (2310, 1732)}


def best(fn, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    try:
        import cv2
    except ImportError:
        cv2 = None
        print("OpenCV not installed: pip install opencv-contrib-python-headless")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads" if cv2 else ""))
    for label, (w, h) in SIZES.items():
        img = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((w, h)), dtype=np.float32) / 255
        x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
        mp = w * h / 1e6
        domain_transform(x[..., :64, :64], x[..., :64, :64])  # compile / warm up
        line = []
        for scan in ("numba", "sequential"):
            t = best(lambda: domain_transform(x, x, 60, 1.0, 3, scan=scan), n=5 if scan == "numba" else 2)
            line.append((scan, t))
        if cv2 is not None:
            ref = cv2.ximgproc.dtFilter(img, img, 60, 1.0, mode=cv2.ximgproc.DTF_RF, numIters=3)
            t_cv = best(lambda: cv2.ximgproc.dtFilter(img, img, 60, 1.0, mode=cv2.ximgproc.DTF_RF, numIters=3))
            ours = domain_transform(x, x, 60, 1.0, 3)[0].permute(1, 2, 0).numpy()
            diff = float(np.abs(ours - ref).max())
        print(f"{label} ({w}x{h}):")
        for scan, t in line:
            ratio = f", ours/OpenCV throughput {t_cv / t:.2f}" if cv2 is not None else ""
            print(f"  ours [{scan:10s}] {t:7.4f} s  {mp / t:7.1f} MP/s{ratio}")
        if cv2 is not None:
            print(f"  OpenCV dtFilter    {t_cv:7.4f} s  {mp / t_cv:7.1f} MP/s   (max |ours - OpenCV| = {diff:.1e})")
        if torch.cuda.is_available():
            xc = x.cuda()
            domain_transform(xc, xc)
            torch.cuda.synchronize()

            def run_gpu():
                domain_transform(xc, xc, 60, 1.0, 3)
                torch.cuda.synchronize()

            t = best(run_gpu)
            print(f"  ours [CUDA logstep] {t:7.4f} s  {mp / t:7.1f} MP/s on {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
