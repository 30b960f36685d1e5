"""Levin et al.'s closed-form matting Laplacian (PAMI 2008) as a matrix-free operator.

For a guide image I (the content photo) and 3x3 windows w_k lying inside the image,

    L_ij = sum_{k : i, j in w_k} ( delta_ij - (1 + (I_i - mu_k)^T A_k (I_j - mu_k)) / |w_k| ),
    A_k  = (Sigma_k + eps / |w_k| * Id)^-1,

with mu_k, Sigma_k the mean and (biased) covariance of the colours in w_k. The N x N matrix is
never built. With z_{k,i} = R_k^-1 (I_i - mu_k), R_k R_k^T = Sigma_k + eps/|w_k| Id (Cholesky),
the bilinear form becomes z_{k,i}^T z_{k,j}, and

    (L p)_i = sum_{k in i} [ p_i - mean_k(p) - z_{k,i}^T (1/|w_k| sum_{j in w_k} z_{k,j} p_j) ].

The whitened colours z are bounded (|z|^2 <= |w_k|), so the operator is accurate in float32
even with eps = 1e-7, where A_k itself is ill-conditioned on flat windows. Precomputed
storage is 27 floats per pixel (O(N)); a product is one ``unfold``, two small einsums and one
``fold`` -- differentiable, batched over channels, on CPU or CUDA. Products that need no
gradient on CPU (the smoothing solver) run in a compiled Numba kernel instead
(``_matting_kernels.py``, same arithmetic, about 4x faster).

Used by Deep Photo Style Transfer's photorealism term (``methods/optim.py``) and by the
exact photorealistic smoothing. :func:`sparse_laplacian` builds the explicit scipy matrix
(vectorised, as Levin's reference code does) for benchmarks and comparisons.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

WIN = 9  # 3x3 windows
SETUP_WINDOWS = 1 << 20  # windows per band of the float64 set-up


class MattingLaplacian:
    """Matrix-free matting Laplacian of ``image`` (``(3, H, W)`` or ``(1, 3, H, W)``, in [0, 1]).

    ``dtype`` is the dtype of the stored whitened colours and of the products; the set-up
    itself always runs in float64.
    """

    def __init__(self, image: torch.Tensor, eps: float = 1e-7, dtype: torch.dtype = torch.float32):
        if image.ndim == 4:
            image = image[0]
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected a (3, H, W) guide, got {tuple(image.shape)}")
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        c, h, w = image.shape
        if h < 3 or w < 3:
            raise ValueError(f"the matting Laplacian needs at least 3x3 pixels, got {h}x{w}")
        self.shape = (h, w)
        self.eps = float(eps)
        # set-up in float64, a band of window rows at a time (bounded memory at 12 MP)
        kw = w - 2
        self.z = torch.empty(WIN, 3, (h - 2) * kw, dtype=dtype, device=image.device)
        eye = (self.eps / WIN) * torch.eye(3, dtype=torch.float64, device=image.device)
        band = max(1, SETUP_WINDOWS // kw)
        for r0 in range(0, h - 2, band):
            r1 = min(h - 2, r0 + band)
            part = image[:, r0:r1 + 2].to(torch.float64)[None].contiguous()
            patches = F.unfold(part, 3)[0].reshape(3, WIN, -1)  # (3, 9, k) colours per window
            d = patches - patches.mean(dim=1, keepdim=True)  # (3, 9, k)
            cov = torch.einsum("ajk,bjk->kab", d, d) / WIN + eye  # (k, 3, 3)
            chol = torch.linalg.cholesky(cov)
            z = torch.linalg.solve_triangular(chol, d.permute(2, 0, 1), upper=False)  # (k, 3, 9)
            self.z[:, :, r0 * kw:r1 * kw] = z.permute(2, 1, 0).to(dtype)  # (9, 3, k): member, colour, window
        self.dtype = dtype
        self._z_grid = None  # numpy view (9, 3, H-2, W-2) for the compiled CPU kernel
        self._work: dict = {}  # the kernel's buffers, allocated once (page faults cost as much as the work)

    @property
    def device(self) -> torch.device:
        return self.z.device

    def matvec(self, p: torch.Tensor) -> torch.Tensor:
        """``L p`` for ``p`` of shape ``(C, H, W)`` or ``(B, C, H, W)`` (each channel separately)."""
        shape = p.shape
        h, w = self.shape
        if tuple(shape[-2:]) != (h, w):
            raise ValueError(f"operand is {tuple(shape[-2:])}, Laplacian is {(h, w)}")
        if self._use_kernel(p):
            return self._matvec_kernel(p)
        work = self._arithmetic(p)
        z = self.z.to(work)
        x = p.reshape(-1, 1, h, w).to(work)
        patches = F.unfold(x, 3)  # (C, 9, K)
        t = torch.einsum("jdk,cjk->cdk", z, patches) / WIN  # (C, 3, K)
        out = patches - patches.mean(dim=1, keepdim=True) - torch.einsum("jdk,cdk->cjk", z, t)
        return F.fold(out, (h, w), 3).reshape(shape)

    __call__ = matvec

    def _arithmetic(self, p: torch.Tensor) -> torch.dtype:
        """Products are computed in the stored dtype, or in float64 for float64 operands (the
        stored whitened colours are then widened: exact, no second copy is kept)."""
        return torch.float64 if p.dtype == torch.float64 else self.dtype

    def _use_kernel(self, p: torch.Tensor) -> bool:
        """Products that need no gradient run in the compiled kernel on CPU (float32 storage)."""
        return (self.z.device.type == "cpu" and self.dtype == torch.float32
                and not (torch.is_grad_enabled() and p.requires_grad))

    def _matvec_kernel(self, p: torch.Tensor, scale: torch.Tensor | None = None, c0: float = 0.0,
                       c1: float = 1.0) -> torch.Tensor:
        from photostyle.ops import _matting_kernels

        h, w = self.shape
        if self._z_grid is None:
            self._z_grid = self.z.numpy().reshape(WIN, 3, h - 2, w - 2)
        work = self._arithmetic(p)
        x = p.detach().reshape(-1, h, w).to(work).contiguous().numpy()
        sc = None if scale is None else scale.to(work).contiguous().numpy()
        key = (x.shape[0], work)
        if key not in self._work:
            self._work[key] = _matting_kernels.work_buffers(x.shape[0], h, w, x.dtype)
        return torch.from_numpy(_matting_kernels.matvec(self._z_grid, x, sc, c0, c1, self._work[key])).reshape(p.shape)

    def scaled_matvec(self, p: torch.Tensor, scale: torch.Tensor, c0: float, c1: float) -> torch.Tensor:
        """``c0 p + c1 S L (S p)`` with ``S = diag(scale)`` (``(H, W)``): one fused pass on CPU."""
        if self._use_kernel(p):
            return self._matvec_kernel(p, scale, c0, c1)
        scale = scale.to(self._arithmetic(p))
        return c0 * p + c1 * scale * self.matvec(scale * p)

    def matvec_reference(self, p: torch.Tensor) -> torch.Tensor:
        """The torch product regardless of device (tests compare the kernel with it)."""
        with torch.enable_grad():
            return self.matvec(p.detach().requires_grad_(True)).detach()

    def quadratic(self, p: torch.Tensor) -> torch.Tensor:
        """``sum_c p_c^T L p_c`` (the photorealism energy of DPST), differentiable."""
        return (p.to(self.dtype) * self.matvec(p)).sum()

    def diagonal(self) -> torch.Tensor:
        """``diag(L)`` as an ``(H, W)`` map (for Jacobi preconditioning)."""
        h, w = self.shape
        per = 1.0 - (1.0 + (self.z**2).sum(dim=1)) / WIN  # (9, K)
        return F.fold(per[None], (h, w), 3)[0, 0]


def sparse_laplacian(image: np.ndarray, eps: float = 1e-7):
    """The explicit ``N x N`` matting Laplacian (scipy CSR, float64) of an ``(H, W, 3)`` image in
    [0, 1], pixels in row-major order. Vectorised like Levin et al.'s reference code: memory
    grows with 81 entries per pixel, which is what the matrix-free operator avoids."""
    import scipy.sparse as sp

    img = np.asarray(image, dtype=np.float64)
    h, w, _ = img.shape
    idx = np.arange(h * w).reshape(h, w)
    # window member indices (K, 9) for windows centred at interior pixels
    offs = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    members = np.stack([idx[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx].ravel() for dy, dx in offs], axis=1)
    cols = img.reshape(-1, 3)[members]  # (K, 9, 3)
    mu = cols.mean(axis=1, keepdims=True)
    d = cols - mu
    cov = np.einsum("kja,kjb->kab", d, d) / WIN + (eps / WIN) * np.eye(3)
    inv = np.linalg.inv(cov)
    vals = -(1.0 + np.einsum("kia,kab,kjb->kij", d, inv, d)) / WIN  # (K, 9, 9)
    vals += np.eye(WIN)[None]
    rows = np.repeat(members, WIN, axis=1).ravel()
    cols_idx = np.tile(members, (1, WIN)).ravel()
    return sp.csr_matrix((vals.ravel(), (rows, cols_idx)), shape=(h * w, h * w))
