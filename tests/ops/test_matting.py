"""The matrix-free matting Laplacian against an explicit one built slowly from its definition."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from photostyle.ops.matting import MattingLaplacian, sparse_laplacian


def slow_laplacian(img: np.ndarray, eps: float) -> sp.csr_matrix:
    """Levin et al. 2008, eq. 12, window by window and pixel pair by pixel pair."""
    h, w, _ = img.shape
    n = h * w
    L = sp.lil_matrix((n, n))
    for cy in range(1, h - 1):
        for cx in range(1, w - 1):
            idx = [(y, x) for y in range(cy - 1, cy + 2) for x in range(cx - 1, cx + 2)]
            cols = np.array([img[y, x] for y, x in idx])
            mu = cols.mean(axis=0)
            cov = (cols - mu).T @ (cols - mu) / 9
            inv = np.linalg.inv(cov + eps / 9 * np.eye(3))
            for a, (ya, xa) in enumerate(idx):
                for b, (yb, xb) in enumerate(idx):
                    wab = (1 + (cols[a] - mu) @ inv @ (cols[b] - mu)) / 9
                    L[ya * w + xa, yb * w + xb] += (1.0 if a == b else 0.0) - wab
    return L.tocsr()


@pytest.fixture(scope="module")
def photo():
    """A 12x10 photo-like image: smooth gradients plus texture, with a flat patch."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:12, 0:10] / 10.0
    img = np.stack([0.3 + 0.4 * x, 0.2 + 0.5 * y, 0.6 - 0.3 * x * y], axis=-1)
    img += 0.05 * rng.random(img.shape)
    img[:4, :4] = 0.5  # exactly flat: singular window covariances
    return img


def _op(img, eps=1e-7, dtype=torch.float64):
    return MattingLaplacian(torch.from_numpy(img).permute(2, 0, 1), eps=eps, dtype=dtype)


@pytest.mark.parametrize("eps", [1e-7, 1e-4])
def test_matrix_free_equals_explicit_laplacian(photo, eps):
    L = slow_laplacian(photo, eps)
    op = _op(photo, eps)
    rng = np.random.default_rng(0)
    p = rng.standard_normal((3, 12, 10))
    expected = np.stack([L @ p[c].ravel() for c in range(3)]).reshape(p.shape)
    got = op.matvec(torch.from_numpy(p)).numpy()
    assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()
    # the vectorised scipy builder used by benchmarks is the same matrix
    assert abs(sparse_laplacian(photo, eps) - L).max() <= 1e-8 * abs(L).max()
    assert np.allclose(op.diagonal().numpy().ravel(), L.diagonal(), atol=1e-9)
    # float32 storage stays accurate even with eps = 1e-7 (ill-conditioned flat windows)
    got32 = _op(photo, eps, torch.float32).matvec(torch.from_numpy(p).float()).numpy()
    assert np.abs(got32 - expected).max() <= 1e-5 * np.abs(expected).max()


def test_laplacian_annihilates_constant_and_affine_images(photo):
    op = _op(photo, eps=1e-7)
    rng = np.random.default_rng(1)
    guide = torch.from_numpy(photo).permute(2, 0, 1)
    const = torch.full((2, 12, 10), 0.7, dtype=torch.float64)
    assert op.matvec(const).abs().max() < 1e-10
    a = torch.from_numpy(rng.standard_normal((2, 3)))
    affine = torch.einsum("kc,chw->khw", a, guide) + torch.tensor([0.3, -0.2], dtype=torch.float64)[:, None, None]
    noise = torch.from_numpy(rng.standard_normal((2, 12, 10)))
    # eps regularises: exactly affine images leave a residual of order eps
    assert op.matvec(affine).abs().max() < 1e-4 * op.matvec(noise).abs().max()
    assert op.quadratic(affine) < 1e-4 * op.quadratic(noise)
    assert op.quadratic(noise) > 0  # positive semi-definite: a generic image has positive energy


def test_photorealism_gradient_passes_gradcheck():
    rng = np.random.default_rng(2)
    op = _op(rng.random((5, 6, 3)), eps=1e-4)
    p = torch.from_numpy(rng.standard_normal((3, 5, 6))).requires_grad_(True)
    assert torch.autograd.gradcheck(op.quadratic, (p,), eps=1e-6, atol=1e-6)
    # and the gradient is 2 L p (L symmetric)
    op.quadratic(p).backward()
    assert torch.allclose(p.grad, 2 * op.matvec(p.detach()), atol=1e-10)


def test_rejects_too_small_and_mismatched_operands():
    with pytest.raises(ValueError, match="3x3"):
        MattingLaplacian(torch.rand(3, 2, 9))
    op = MattingLaplacian(torch.rand(3, 8, 9))
    with pytest.raises(ValueError, match="operand"):
        op.matvec(torch.rand(1, 9, 8))
    # a grey guide works (replicated to three channels)
    assert MattingLaplacian(torch.rand(1, 8, 9)).matvec(torch.ones(1, 8, 9)).abs().max() < 1e-5


def test_banded_setup_equals_one_band(monkeypatch):
    import photostyle.ops.matting as matting

    torch.manual_seed(3)
    img = torch.rand(3, 13, 11)
    whole = matting.MattingLaplacian(img)
    monkeypatch.setattr(matting, "SETUP_WINDOWS", 7)  # one window row per band
    banded = matting.MattingLaplacian(img)
    assert torch.equal(banded.z, whole.z)
