"""The fast method's network (issue #4): inference throughput and training speed.

    python benchmarks/fast_net.py [--repeats 3] [--train-steps 5]

The paper-size network (width 32, 5 residual blocks; random weights: same cost as trained),
on this machine, in one run:

* inference megapixels/s at 512x512 (a batch of 4 photos) and at 2 MP (one photo, 1728x1152),
  "plain" (fp32, eager, NCHW, one image at a time, autograd off with no_grad) against
  "ours" (inference_mode, the 512x512 photos batched; on CUDA also channels-last memory
  format and bf16 autocast, as the method does), so the gain shows as a ratio; on CPU the
  channels-last variant is printed too (the method does not use it there: it is slower);
* the same at 2 MP through the tiled path (1 MP tiles), to show the cost of tiling;
* training steps/s (batch 4, 256 px crops, VGG-16 loss network to relu4_3).
On CUDA it adds photos/s at 852x480 (the seed's 1.40 s per photo on a GTX 1080 Ti).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from photostyle.config import validate_config  # noqa: E402
from photostyle.nets.fastnet import PerceptualLoss, TransformerNet, run_plain, stylize_photo  # noqa: E402
from photostyle.nets.vgg import VGGFeatures  # noqa: E402
from photostyle.core.weights import resolve  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def best_of(fn, dev, repeats):
    fn()  # warm-up
    sync(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return min(times)


def inference(dev, repeats):
    torch.manual_seed(0)
    net = TransformerNet(32, 5).to(dev).eval()
    net_cl = TransformerNet(32, 5).to(dev).eval().to(memory_format=torch.channels_last)
    net_cl.load_state_dict(net.state_dict())
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    cases = {"512x512 x4": [torch.rand(1, 3, 512, 512, device=dev) for _ in range(4)],
             "2 MP": [torch.rand(1, 3, 1152, 1728, device=dev)]}
    for name, photos in cases.items():
        mp = sum(p.shape[-2] * p.shape[-1] for p in photos) / 1e6

        def plain():
            with torch.no_grad():
                for p in photos:
                    run_plain(net, p)

        def ours(channels_last=dev.type == "cuda"):
            with torch.inference_mode(), amp:
                batch = torch.cat(photos)
                if channels_last:
                    run_plain(net_cl, batch.contiguous(memory_format=torch.channels_last))
                else:
                    run_plain(net, batch)

        tp, to = best_of(plain, dev, repeats), best_of(ours, dev, repeats)
        extra = ""
        if dev.type == "cpu":
            tc = best_of(lambda: ours(True), dev, repeats)
            extra = f" (channels-last: {mp / tc:.2f} MP/s, {tp / tc:.2f}x)"
        print(f"  {dev.type:4s} {name:11s}: plain {mp / tp:6.2f} MP/s, ours {mp / to:6.2f} MP/s, ratio {tp / to:.2f}x{extra}")
    big = cases["2 MP"][0]

    def tiled():
        with torch.inference_mode(), amp:
            n, b = (net_cl, big.contiguous(memory_format=torch.channels_last)) if dev.type == "cuda" else (net, big)
            stylize_photo(n, b, tile_megapixels=1.0, stats_megapixels=1.0)

    tt = best_of(tiled, dev, repeats)
    print(f"  {dev.type:4s} 2 MP tiled (1 MP tiles, overlap 128): {2.0 / tt:6.2f} MP/s")
    if dev.type == "cuda":
        x = torch.rand(1, 3, 480, 852, device=dev)

        def one():
            with torch.inference_mode(), amp:
                run_plain(net_cl, x.contiguous(memory_format=torch.channels_last))

        t = best_of(one, dev, repeats)
        print(f"  cuda 852x480: {1 / t:.1f} photos/s ({t * 1000:.1f} ms per photo; seed: 1400 ms on a GTX 1080 Ti,"
              " including refinement)")


def training(dev, steps):
    cfg = dict(validate_config({})["train"], seed=0)
    torch.manual_seed(0)
    net = TransformerNet(cfg["width"], cfg["residual_blocks"]).to(dev)
    vgg = VGGFeatures("vgg16", resolve("vgg16-imagenet", "random", "-", 0), 0, "relu4_3").to(dev)
    loss = PerceptualLoss(vgg, torch.rand(1, 3, 384, 384, device=dev), cfg)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(cfg["batch_size"], 3, cfg["image_size"], cfg["image_size"], device=dev)

    def step():
        opt.zero_grad()
        sum(loss(net(x), x).values()).backward()
        opt.step()

    step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    rate = steps / (time.perf_counter() - t0)
    print(f"  {dev.type:4s} training: {rate:.3f} steps/s (batch {cfg['batch_size']}, {cfg['image_size']} px);"
          f" the default 40k steps would take {cfg['steps'] / rate / 3600:.1f} h")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=5)
    a = ap.parse_args()
    devs = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; network width 32, 5 residual blocks")
    for dev in devs:
        inference(dev, a.repeats)
        training(dev, a.train_steps)


if __name__ == "__main__":
    np.random.seed(0)
    main()
