"""Domain transform edge-aware filtering (Gastal & Oliveira, SIGGRAPH 2011).

Pure functions on ``(B, C, H, W)`` tensors, on any device. The guide's domain distance
between neighbouring pixels is ``1 + sigma_s / sigma_r * sum_c |dI_c|``; iteration ``i`` of
``N`` uses ``sigma_H_i = sigma_s * sqrt(3) * 2^(N - i - 1) / sqrt(4^N - 1)``.

* Recursive filter (RF): per iteration a horizontal pass (left->right, then right->left)
  and a vertical pass, each the first-order recurrence ``y_k = (1 - v_k) x_k + v_k y_(k-1)``
  with ``v_k = a^d_k``, ``a = exp(-sqrt(2) / sigma_H_i)``.
* Normalised convolution (NC): a box filter of radius ``sigma_H_i * sqrt(3)`` in the
  transformed domain, with per-row ``searchsorted`` and cumulative sums.

The recurrence is a linear scan; three implementations, all O(image) memory:

* ``"numba"``: a compiled CPU kernel (``_dt_kernels``), lines in parallel; the CPU default;
* ``"sequential"``: one vectorised tensor update per column over all rows and channels at
  once (W tensor ops per pass; any device, no compiler);
* ``"logstep"``: a Hillis-Steele scan over affine maps ``(v, b)``: ceil(log2 W) steps of
  whole-image tensor ops (few kernel launches; meant for GPUs).
``"auto"`` picks ``logstep`` on CUDA and ``numba`` on CPU (``sequential`` if Numba is missing).
"""

from __future__ import annotations

import math

import torch


def _domain_derivatives(guide: torch.Tensor, sigma_s: float, sigma_r: float):
    """``(B, 1, H, W)`` horizontal and vertical domain distances (first column/row unused)."""
    ratio = sigma_s / sigma_r
    dx = torch.ones_like(guide[:, :1])
    dy = torch.ones_like(guide[:, :1])
    if guide.shape[-1] > 1:
        dx[..., 1:] += ratio * (guide[..., 1:] - guide[..., :-1]).abs().sum(1, keepdim=True)
    if guide.shape[-2] > 1:
        dy[..., 1:, :] += ratio * (guide[..., 1:, :] - guide[..., :-1, :]).abs().sum(1, keepdim=True)
    return dx, dy


def iteration_sigmas(sigma_s: float, iterations: int) -> list[float]:
    n = iterations
    return [sigma_s * math.sqrt(3) * 2 ** (n - i - 1) / math.sqrt(4**n - 1) for i in range(n)]


def _scan_sequential(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal then anti-causal recursive filter along the last dim, in place on a copy.

    ``x``: (..., W); ``v``: broadcastable to ``x``, ``v[..., k]`` couples k-1 and k.
    """
    w = x.shape[-1]
    # Scan dim first, so each step touches one contiguous slab of all rows and channels.
    f = x.movedim(-1, 0).contiguous()
    vv = v.movedim(-1, 0).expand(w, *f.shape[1:]).contiguous()
    for k in range(1, w):
        torch.lerp(f[k], f[k - 1], vv[k], out=f[k])
    for k in range(w - 2, -1, -1):
        torch.lerp(f[k], f[k + 1], vv[k + 1], out=f[k])
    return f.movedim(0, -1)


def _affine_scan(v: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inclusive scan of ``y_k = v_k y_(k-1) + b_k`` (y_-1 = 0) along the last dim, log-step."""
    a, y = v.clone(), b.clone()
    n = y.shape[-1]
    step = 1
    while step < n:
        # compose each element with the one `step` before it: (a1,b1) then (a2,b2)
        y_prev, a_prev = y[..., :-step], a[..., :-step]
        y = torch.cat([y[..., :step], torch.addcmul(y[..., step:], a[..., step:], y_prev)], dim=-1)
        a = torch.cat([a[..., :step], a[..., step:] * a_prev], dim=-1)
        step *= 2
    return y


def _scan_logstep(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    v = v.expand_as(x)
    # causal: y_k = (1 - v_k) x_k + v_k y_(k-1), with y_0 = x_0 (v_0 is unused -> 0)
    vc = torch.cat([torch.zeros_like(v[..., :1]), v[..., 1:]], dim=-1)
    y = _affine_scan(vc, (1 - vc) * x)
    # anti-causal on the reversed sequence: coefficient for k is v_(k+1)
    vr = torch.cat([v[..., 1:], torch.zeros_like(v[..., :1])], dim=-1).flip(-1)
    return _affine_scan(vr, (1 - vr) * y.flip(-1)).flip(-1)


def _recursive_pass(x: torch.Tensor, d: torch.Tensor, sigma_h: float, scan: str) -> torch.Tensor:
    v = torch.exp(-math.sqrt(2) / sigma_h * d)  # a ** d, computed stably
    if x.shape[-1] == 1:
        return x
    return _scan_logstep(x, v) if scan == "logstep" else _scan_sequential(x, v)


def _box_pass(x: torch.Tensor, d: torch.Tensor, sigma_h: float) -> torch.Tensor:
    """Normalised-convolution pass: mean of x over |ct(j) - ct(k)| <= r along the last dim."""
    if x.shape[-1] == 1:
        return x
    r = sigma_h * math.sqrt(3)
    d0 = d.clone()
    d0[..., 0] = 0
    ct = torch.cumsum(d0, dim=-1)  # (B, 1, H, W) domain coordinates
    flat_ct = ct.reshape(-1, ct.shape[-1]).contiguous()
    lo = torch.searchsorted(flat_ct, flat_ct - r, side="left").reshape(ct.shape)
    hi = torch.searchsorted(flat_ct, flat_ct + r, side="right").reshape(ct.shape)
    csum = torch.nn.functional.pad(torch.cumsum(x, dim=-1), (1, 0))
    lo_e, hi_e = lo.expand_as(x), hi.expand_as(x)
    total = torch.gather(csum, -1, hi_e) - torch.gather(csum, -1, lo_e)
    return total / (hi_e - lo_e).to(x.dtype)


def _rf_numba(image: torch.Tensor, guide: torch.Tensor, sigma_s: float, sigma_r: float,
              sigmas: list[float]) -> torch.Tensor:
    """RF with the compiled kernels, in torch's (C, H, W) layout. Buffers are allocated once
    and reused in place, on huge pages where the system offers them: fresh large allocations
    page-fault, which costs about as much as the filtering itself."""
    from photostyle.ops import _dt_kernels as k
    from photostyle.core.tensors import empty_hugepage

    src = image.to(torch.float32).contiguous()  # no copy for float32 input
    out = empty_hugepage(*src.shape)
    _, _, h, w = out.shape
    dx, dy = empty_hugepage(h, w), empty_hugepage(h, w)
    for b in range(out.shape[0]):
        g = guide[b].to(torch.float32).contiguous().numpy()
        k.domain_distances(g, sigma_s / sigma_r, dx.numpy(), dy.numpy())
        # sigma_H halves from one iteration to the next, so a ** d squares: one exp per
        # direction, then v <- v * v (in place, reusing the distance buffers).
        vx = dx.mul_(-math.sqrt(2) / sigmas[0]).exp_()
        vy = dy.mul_(-math.sqrt(2) / sigmas[0]).exp_()
        f = out[b].numpy()
        for i in range(len(sigmas)):
            if i:
                vx.square_()
                vy.square_()
            k.rf_horizontal(src[b].numpy() if i == 0 else f, f, vx.numpy())
            k.rf_vertical(f, vy.numpy())
    return out


def _numba_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def domain_transform(image: torch.Tensor, guide: torch.Tensor | None = None, sigma_spatial: float = 60.0,
                     sigma_range: float = 1.0, iterations: int = 3, variant: str = "rf",
                     scan: str = "auto") -> torch.Tensor:
    """Edge-aware smoothing of ``image`` ``(B, C, H, W)`` guided by ``guide`` ``(B, Cg, H, W)``.

    Images are in [0, 1] (sigma_range is in those units). Half-precision inputs are computed
    in float32 and returned in their own dtype.
    """
    if image.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got {tuple(image.shape)}")
    guide = image if guide is None else guide
    if guide.shape[0] != image.shape[0] or guide.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"guide {tuple(guide.shape)} does not match image {tuple(image.shape)}")
    if variant not in ("rf", "nc"):
        raise ValueError(f"variant must be 'rf' or 'nc', not {variant!r}")
    out_dtype = image.dtype
    work = torch.float64 if image.dtype == torch.float64 else torch.float32
    if scan == "auto":
        scan = "logstep" if image.is_cuda else ("numba" if _numba_available() else "sequential")
    if variant == "rf" and scan == "numba":
        if image.is_cuda:
            raise ValueError("scan='numba' runs on CPU tensors only")
        sigmas = iteration_sigmas(sigma_spatial, iterations)
        return _rf_numba(image, guide, sigma_spatial, sigma_range, sigmas).to(out_dtype)
    f = image.to(work)
    dx, dy = _domain_derivatives(guide.to(work), sigma_spatial, sigma_range)
    for sigma_h in iteration_sigmas(sigma_spatial, iterations):
        if variant == "rf":
            f = _recursive_pass(f, dx, sigma_h, scan)
            f = _recursive_pass(f.transpose(-1, -2), dy.transpose(-1, -2), sigma_h, scan).transpose(-1, -2)
        else:
            f = _box_pass(f, dx, sigma_h)
            f = _box_pass(f.transpose(-1, -2), dy.transpose(-1, -2), sigma_h).transpose(-1, -2)
    return f.to(out_dtype).contiguous()


def detail_layer(content: torch.Tensor, **dt_kwargs) -> torch.Tensor:
    """``content - DT(content; guide=content)``: the detail the refinement puts back."""
    return content - domain_transform(content, content, **dt_kwargs)


def detail_transfer(stylized: torch.Tensor, content: torch.Tensor, detail: torch.Tensor | None = None,
                    **dt_kwargs) -> torch.Tensor:
    """Seed 000's refinement: ``out = DT(stylized; content) + (content - DT(content; content))``.

    ``detail`` may be passed in when it was computed already (it depends on the content
    photo and the filter settings only, so one photo's detail serves all its stylisations).
    """
    colour = domain_transform(stylized, content, **dt_kwargs)
    if detail is None:
        detail = detail_layer(content, **dt_kwargs)
    return (colour + detail).clamp(0.0, 1.0)
