"""Conversions between ``(H, W, 3)`` uint8 arrays and ``(B, C, H, W)`` float32 tensors in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 in [0, 1] on ``device``."""
    t = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).to(device)  # PIL arrays are read-only
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8 (clipped, rounded)."""
    if tensor.ndim != 4 or tensor.shape[0] != 1 or tensor.shape[1] != 3:
        raise ValueError(f"expected (1, 3, H, W), got {tuple(tensor.shape)}")
    t = tensor.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return t[0].permute(1, 2, 0).contiguous().cpu().numpy()


def to_uint16(tensor: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint16 (clipped, rounded; 8-bit level v is 257 v)."""
    if tensor.ndim != 4 or tensor.shape[0] != 1 or tensor.shape[1] != 3:
        raise ValueError(f"expected (1, 3, H, W), got {tuple(tensor.shape)}")
    t = tensor.detach().float().clamp(0.0, 1.0).mul(65535.0).round().to(torch.int32)
    return t[0].permute(1, 2, 0).contiguous().cpu().numpy().astype(np.uint16)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of ``(B, 3, H, W)`` -> ``(B, 1, H, W)``."""
    w = image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (image * w).sum(dim=1, keepdim=True)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> the input normalisation of ImageNet-trained networks."""
    return (x - x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad ``(B, C, H, W)`` at the bottom and right to multiples of ``multiple`` (reflection, or
    replication where the photo is smaller than the padding); also returns the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14


def empty_hugepage(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.empty`` on CPU, with Linux told (``madvise(MADV_HUGEPAGE)``) to back the buffer by
    2 MB transparent huge pages where the system allows them (``madvise`` mode).

    A fresh image-sized buffer is otherwise filled in 4 KB page faults on first write (12k
    faults for a 4 MP colour image), which cost as much as a pass of the recursive filter;
    huge pages also cover the tall column strips of the vertical passes with few TLB entries.
    Elsewhere (other systems, THP off) this is plain ``torch.empty``; contents are the same.
    """
    t = torch.empty(*shape, dtype=dtype)
    nbytes = t.numel() * t.element_size()
    if nbytes < 2 * _HUGE_PAGE:
        return t
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        start = (t.data_ptr() + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
        end = (t.data_ptr() + nbytes) & ~(_HUGE_PAGE - 1)
        if end > start:
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_HUGEPAGE)
    except (OSError, AttributeError):  # no libc madvise: plain pages
        pass
    return t
