"""Photorealistic smoothing, FastPhotoStyle's second step (Li et al., ECCV 2018), as a refine option.

Exact step: with W the matting affinity of the content photo (Levin et al.; for 3x3 windows
``W = D - L`` where L is the matting Laplacian and D the diagonal of window counts), the
smoothed image R minimises

    sum_ij W_ij |R_i / sqrt(d_i) - R_j / sqrt(d_j)|^2 + lambda sum_i |R_i - Y_i|^2

for the stylised image Y, whose minimiser is ``R = (1 - a) (I - a S)^-1 Y`` with
``S = D^-1/2 W D^-1/2`` and ``a = 1 / (1 + lambda)``. FastPhotoStyle factorises the sparse
matrix (UMFPACK/SuperLU: minutes and tens of GB at a megapixel). Here the system

    A R = (1 - a) Y,   A x = (1 - a) x + a D^-1/2 L (D^-1/2 x)

is solved matrix-free: L is :class:`photostyle.matting.MattingLaplacian` (O(N) memory, a
compiled kernel on CPU, torch on CUDA) and the solver is conjugate gradients with a Jacobi
preconditioner, all three channels at once, started from Y. A is symmetric positive definite
with eigenvalues in [1 - a, 1 + a], so CG converges at a rate set by lambda alone, not by the
photo's size.

The right-hand side is small ((1 - a) Y = 1e-4 Y at the default lambda) while A x sums terms
of the size of x that cancel, so in float32 the true residual of any iterate stalls at a few
1e-3 (the direct solution rounded to float32 measures 1.6e-4). The solve is therefore
mixed-precision iterative refinement: the residual ``b - A x`` is computed in float64 (the
same compiled kernel, float64 arithmetic over the stored float32 whitened colours) and
accumulated into a float64 x, and float32 CG solves each correction ``A d = r`` to the
relative reduction still needed, at most 1e-3 (about three orders of magnitude per round);
the tolerance and the reported residual are the float64 ones. About 360 CG iterations reach
1e-3 at lambda = 1e-4.

Approximate step: FastPhotoStyle's fast alternative, a guided filter (He et al. 2010) of the
stylised image with the content photo as the colour guide (``radius``, ``eps``), built from
box filters: O(N), a fraction of a second per megapixel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from photostyle.ops.matting import MattingLaplacian

log = logging.getLogger(__name__)


BORDER_PAD = 8  # px of reflection around the photo during the exact solve (see smooth_exact)


INNER_TOLERANCE = 1e-3  # the most a float32 CG solve of a correction is asked to gain


@dataclass
class SolveInfo:
    iterations: int  # CG iterations, all refinement rounds together
    residual: float  # largest relative residual |b - A x| / |b| over the channels, in float64
    rounds: int = 1  # refinement rounds (float32 CG solves)


def _window_counts(h: int, w: int, device) -> torch.Tensor:
    ones = torch.ones(1, 1, h, w, device=device)
    return F.fold(F.unfold(ones, 3), (h, w), 3)[0, 0]


class SmoothingSystem:
    """The SPD operator ``A`` of the exact smoothing for one content photo ``(3, H, W)``."""

    def __init__(self, content: torch.Tensor, lam: float = 1e-4, eps: float = 1e-7):
        if content.ndim == 4:
            content = content[0]
        self.alpha = 1.0 / (1.0 + lam)
        self.laplacian = MattingLaplacian(content, eps=eps)
        h, w = content.shape[-2:]
        counts = _window_counts(h, w, content.device)
        self.inv_sqrt = counts.rsqrt()
        self.diag = (1 - self.alpha) + self.alpha * self.laplacian.diagonal() / counts

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        return self.laplacian.scaled_matvec(x, self.inv_sqrt, 1 - a, a)

    def rhs(self, y: torch.Tensor) -> torch.Tensor:
        return (1 - self.alpha) * y

    def residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``b - A x`` in float64 for the right-hand side of ``y`` (float64 ``(C, H, W)``)."""
        a = self.alpha
        x = x.to(torch.float64)
        return (1 - a) * y.to(torch.float64) - self.laplacian.scaled_matvec(x, self.inv_sqrt.double(), 1 - a, a)


def conjugate_gradient(op, b: torch.Tensor, x0: torch.Tensor, diag: torch.Tensor, tol: float,
                       max_iterations: int) -> tuple[torch.Tensor, SolveInfo]:
    """Jacobi-preconditioned CG on ``(C, H, W)`` right-hand sides, one independent system per
    channel; stops when every channel's (recursively updated) relative residual is below ``tol``.

    In float32 this is the inner solver of :func:`solve_refined`, which asks it for corrections
    to 1e-3 only: past that its true residual stops falling (rounding, see the module docstring)."""
    c = b.shape[0]

    def dot(u, v):  # per-channel dot products without an image-sized temporary
        return torch.linalg.vecdot(u.reshape(c, -1), v.reshape(c, -1))

    b = b.contiguous()
    x = x0.clone(memory_format=torch.contiguous_format)
    r = b - op(x)
    z = r / diag
    p = z.clone()
    rz = dot(r, z)
    bnorm = b.norm(dim=(1, 2)).clamp_min(1e-30)
    rel = float((r.norm(dim=(1, 2)) / bnorm).max())
    it = 0
    while rel > tol and it < max_iterations:  # in place: large photos must not page-fault per step
        ap = op(p)
        step = (rz / dot(p, ap).clamp_min(1e-30))[:, None, None]
        x.addcmul_(step, p)
        r.addcmul_(step, ap, value=-1)
        torch.div(r, diag, out=z)
        rz_new = dot(r, z)
        p.mul_((rz_new / rz.clamp_min(1e-30))[:, None, None]).add_(z)
        rz = rz_new
        it += 1
        rel = float((r.norm(dim=(1, 2)) / bnorm).max())
    return x, SolveInfo(it, rel)


def solve_refined(system: SmoothingSystem, y: torch.Tensor, tol: float,
                  max_iterations: int) -> tuple[torch.Tensor, SolveInfo]:
    """Solve ``A x = (1 - a) y`` to a float64 relative residual ``tol`` per channel, started from
    ``y``: float32 Jacobi-CG on corrections, residuals and solution in float64 (see the module
    docstring). Stops at ``tol``, at ``max_iterations`` CG iterations in all, or when a round
    no longer lowers the residual. Returns the float64 solution."""
    # photos arrive channels-last (decoded (H, W, 3), permuted): every vector of the solve would
    # inherit that layout, and each product would copy its operand
    y = y.to(torch.float32).contiguous()
    x = y.to(torch.float64)
    bnorm = system.rhs(y.to(torch.float64)).norm(dim=(1, 2)).clamp_min(1e-300)
    iterations, rounds, best = 0, 0, float("inf")
    while True:
        r = system.residual(x, y)
        rnorm = r.norm(dim=(1, 2))
        rel = float((rnorm / bnorm).max())
        if rel <= tol or iterations >= max_iterations or rel >= 0.5 * best:
            break
        best = rel
        scale = rnorm.clamp_min(1e-300)[:, None, None]  # each channel's correction system at unit size
        rhs = (r / scale).to(torch.float32)
        inner = min(0.5, max(INNER_TOLERANCE, 0.3 * tol / rel))  # no tighter than the round needs
        d, info = conjugate_gradient(system, rhs, torch.zeros_like(rhs), system.diag,
                                     inner, max_iterations - iterations)
        x.add_(d.to(torch.float64) * scale)
        iterations += info.iterations
        rounds += 1
    return x, SolveInfo(iterations, rel, rounds)


def smooth_exact(stylized: torch.Tensor, content: torch.Tensor, lam: float = 1e-4, eps: float = 1e-7,
                 tol: float = 1e-3, max_iterations: int = 2000,
                 border_pad: int = BORDER_PAD) -> tuple[torch.Tensor, SolveInfo]:
    """``(1, 3, H, W)`` stylised + content in [0, 1] -> smoothed ``(1, 3, H, W)`` (clipped), solve info.

    Pixels near the border lie in fewer 3x3 windows, so D^-1/2 varies there and the normalised
    affinity no longer preserves a stylisation that is already locally affine in the content;
    with the weak anchoring (lambda = 1e-4) that shows as a frame 2 px wide and a slight global
    shift (measured: 0.13 mean change in the outer rows of an exactly affine stylisation). The
    system is therefore solved on the photo padded by reflection (``border_pad`` px) and
    cropped back: the outer rows then change by under 0.01."""
    h, w = content.shape[-2:]
    if min(h, w) < 3:
        return stylized, SolveInfo(0, 0.0)
    pad = min(border_pad, h - 1, w - 1)
    content_p = F.pad(content.float(), (pad,) * 4, mode="reflect")
    system = SmoothingSystem(content_p, lam, eps)
    y = F.pad(stylized.float(), (pad,) * 4, mode="reflect")[0]
    x, info = solve_refined(system, y, tol, max_iterations)
    x = x[:, pad:pad + h, pad:pad + w].to(torch.float32)
    if info.residual > tol:
        log.warning("smoothing stopped at %d iterations with relative residual %.2e (> %.0e)",
                    info.iterations, info.residual, tol)
    return x.clamp(0, 1)[None], info


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over (2r+1)^2 windows clipped at the borders, by integral images: O(1) per pixel
    whatever the radius (sums in float64, so large photos keep their precision)."""
    h, w = x.shape[-2:]

    def window_sum(v: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        c = F.pad(v.cumsum(dim), (0, 0, 1, 0) if dim == -2 else (1, 0))
        idx = torch.arange(n, device=v.device)
        hi, lo = (idx + r + 1).clamp(max=n), (idx - r).clamp(min=0)
        return c.index_select(dim, hi) - c.index_select(dim, lo)

    s = window_sum(window_sum(x.double(), -2, h), -1, w)
    idx_h, idx_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    nh = (idx_h + r + 1).clamp(max=h) - (idx_h - r).clamp(min=0)
    nw = (idx_w + r + 1).clamp(max=w) - (idx_w - r).clamp(min=0)
    return (s / (nh[:, None] * nw[None, :])).to(x.dtype)


def guided_filter(p: torch.Tensor, guide: torch.Tensor, radius: int = 15, eps: float = 1e-2) -> torch.Tensor:
    """He et al.'s guided filter with a colour guide: ``(1, C, H, W)`` input, ``(1, 3, H, W)`` guide.

    Per window a linear model ``q = A I + b`` is fitted by ridge regression (``eps``), and the
    models of the windows covering a pixel are averaged.
    """
    p, guide = p.float(), guide.float()
    r = max(0, min(radius, (min(p.shape[-2:]) - 1) // 2))
    c = p.shape[1]
    mi, mp = _box(guide, r), _box(p, r)
    # covariances of the guide (3x3) and guide-input (3xC), per pixel
    ii = torch.stack([_box(guide[:, a:a + 1] * guide[:, b:b + 1], r)[:, 0] - mi[:, a] * mi[:, b]
                      for a in range(3) for b in range(3)], dim=-1).reshape(*guide.shape[-2:], 3, 3)
    ip = torch.stack([_box(guide[:, a:a + 1] * p, r) - mi[:, a:a + 1] * mp for a in range(3)], dim=-1)  # (1,C,H,W,3)
    sigma = ii + eps * torch.eye(3, device=p.device)
    coef = torch.linalg.solve(sigma, ip[0].permute(1, 2, 3, 0))  # (H, W, 3, C)
    coef = coef.permute(3, 2, 0, 1)  # (C, 3, H, W)
    offset = mp[0] - (coef * mi[0][None]).sum(dim=1)  # (C, H, W)
    coef = _box(coef.reshape(1, c * 3, *p.shape[-2:]), r).reshape(c, 3, *p.shape[-2:])
    offset = _box(offset[None], r)[0]
    return ((coef * guide[0][None]).sum(dim=1) + offset)[None]


def smooth(stylized: torch.Tensor, content: torch.Tensor, settings: dict) -> torch.Tensor:
    """The refine stage's smoothing step: ``settings`` is ``refine.smoothing`` of the config."""
    mode = settings["mode"]
    if mode == "none":
        return stylized
    if mode == "guided":
        return guided_filter(stylized, content, settings["guided_radius"], settings["guided_eps"]).clamp(0, 1)
    if mode == "exact":
        out, info = smooth_exact(stylized, content, settings["lambda"], settings["matting_eps"],
                                 settings["tolerance"], settings["max_iterations"])
        log.info("exact smoothing: %d CG iterations in %d rounds, relative residual %.2e (float64)",
                 info.iterations, info.rounds, info.residual)
        return out
    raise ValueError(f"unknown smoothing mode {mode!r}")
