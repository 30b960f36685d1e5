"""The training loop shared by the fast method's per-style networks, the universal methods'
decoders and MUNIT's translation networks: Adam on random crops of the user's photos, atomic checkpoints, resumption.

The crops and photo order of step s depend only on (seed, s) (:class:`CropSampler`), and the
checkpoint holds the network, the optimiser state, the step and the loss log, so a run killed
and restarted continues exactly as an uninterrupted one (tested bit for bit on CPU).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

log = logging.getLogger(__name__)


class CropSampler:
    """Random crops of ``size`` px from a fixed list of photos; step ``s``'s batch depends only on
    (seed, s). Photos are decoded once, resized so the short side is ``size``, and kept."""

    def __init__(self, photos: list[np.ndarray], size: int, seed: int):
        from PIL import Image

        self.size, self.seed = size, seed
        self.images = []
        for arr in photos:
            h, w = arr.shape[:2]
            s = size / min(h, w)
            im = Image.fromarray(arr).resize((max(size, round(w * s)), max(size, round(h * s))),
                                             Image.Resampling.BICUBIC)
            self.images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
        if not self.images:
            raise ValueError("no usable training photos")

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        out = []
        for _ in range(batch_size):
            img = self.images[int(torch.randint(len(self.images), (1,), generator=g))]
            h, w = img.shape[-2:]
            y = int(torch.randint(h - self.size + 1, (1,), generator=g))
            x = int(torch.randint(w - self.size + 1, (1,), generator=g))
            crop = img[:, y:y + self.size, x:x + self.size]
            if bool(torch.randint(2, (1,), generator=g)):
                crop = crop.flip(-1)
            out.append(crop)
        return torch.stack(out).float() / 255


def fit(net: nn.Module, loss_fn: Callable[[torch.Tensor], dict] | None, sampler, cfg: dict,
        save: Callable[[nn.Module], None], checkpoint: str | Path, loss_csv: str | Path, columns: tuple[str, ...],
        meta: dict[str, str], device, stop_after: int | None = None, *,
        optimizers: dict[str, torch.optim.Optimizer] | None = None,
        update: Callable[[torch.Tensor, int], dict] | None = None) -> nn.Module:
    """Train ``net`` (built and seeded by the caller) on ``loss_fn(batch) -> {name: loss}``.

    ``cfg``: ``steps``, ``batch_size``, ``learning_rate``, ``checkpoint_every``, ``log_every``.
    Resumes from ``checkpoint`` when it exists and was written for the same
    ``meta["config_hash"]``; writes it atomically every ``checkpoint_every`` steps, with the
    loss log ``loss_csv`` (``columns``: step, total, the loss names, seconds). ``save(net)``
    writes the final model. ``stop_after`` (tests) stops the run after that step as if killed.

    Adversarial training (MUNIT) passes its own ``optimizers`` (all checkpointed) and
    ``update(batch, step) -> {name: loss}``, which makes the optimiser steps itself.
    """
    from photostyle.core.io import atomic_path, write_csv_atomic

    opts = optimizers or {"optimizer": torch.optim.Adam(net.parameters(), lr=cfg["learning_rate"])}
    if update is None:
        def update(x, _step):
            opt = opts["optimizer"]
            opt.zero_grad(set_to_none=True)
            parts = loss_fn(x)
            sum(parts.values()).backward()
            opt.step()
            return parts
    step, rows = 0, []
    checkpoint = Path(checkpoint)
    if checkpoint.exists():
        blob = torch.load(checkpoint, map_location=device, weights_only=True)
        if blob["meta"].get("config_hash") == meta.get("config_hash"):
            net.load_state_dict(blob["state_dict"])
            for name, opt in opts.items():
                opt.load_state_dict(blob[name])
            step, rows = int(blob["step"]), list(blob["losses"])
            log.info("resuming from %s at step %d", checkpoint, step)
        else:
            log.warning("ignoring checkpoint %s: written for another configuration", checkpoint)
    rows = [dict(zip(columns, r)) for r in rows]
    net.train()
    t0 = time.perf_counter() - (float(rows[-1]["seconds"]) if rows else 0.0)

    def save_checkpoint():
        with atomic_path(checkpoint) as tmp:
            torch.save({"state_dict": net.state_dict(), **{k: o.state_dict() for k, o in opts.items()}, "step": step,
                        "losses": [[r[c] for c in columns] for r in rows], "meta": dict(meta)}, tmp)
        write_csv_atomic(loss_csv, columns, rows)

    while step < cfg["steps"]:
        x = sampler.batch(step, cfg["batch_size"]).to(device)
        parts = update(x, step)
        total = sum(parts.values())
        step += 1
        rows.append({"step": step, "total": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                     "seconds": round(time.perf_counter() - t0, 3)})
        for c in columns:
            rows[-1].setdefault(c, "")
        if step % cfg["log_every"] == 0 or step == cfg["steps"]:
            log.info("step %d/%d: %s", step, cfg["steps"],
                     ", ".join(f"{k} {float(v):.4g}" for k, v in rows[-1].items() if k not in ("step", "seconds") and v != ""))
        if step % cfg["checkpoint_every"] == 0 or step == cfg["steps"]:
            save_checkpoint()
        if stop_after is not None and step >= stop_after:
            raise KeyboardInterrupt(f"stopped after step {step} (test hook)")
    net.eval()
    save(net)
    write_csv_atomic(loss_csv, columns, rows)
    return net

