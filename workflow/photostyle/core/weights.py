"""The one registry of pretrained weights, and the resolver that finds, verifies and loads them.

``weights.mode`` (config):

* ``pretrained`` -- use ``weights.dir``, else the torch / Hugging Face cache, else download
  (if ``weights.download``); if all fail, stop with an error naming the file, its URL and
  where to place it.
* ``random`` -- seeded random initialisation, chosen explicitly.
* ``auto`` -- pretrained where obtainable, else random with a loud warning.

Whatever is used is returned as a provenance string (``sha256:<digest>`` of the file that was
loaded, or ``random, seed N``) that every output, metric row and the report carry.

Checksums: torchvision publishes the first hex digits of each file's SHA-256 in its file
name (``vgg16-397923af.pth``) and :func:`torch.hub.load_state_dict_from_url` checks that
prefix; we check the same prefix, and in addition the full digest recorded in
``<weights.dir>/SHA256SUMS`` by ``photostyle fetch-weights`` (trust on first fetch), so a
file copied to an offline cluster is verified against what the login node fetched.
Files are loaded with ``torch.load(..., weights_only=True)`` only after verification.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from photostyle.core.io import file_digest

log = logging.getLogger(__name__)


class WeightsUnavailable(RuntimeError):
    pass


class ChecksumMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class WeightSpec:
    name: str
    source: str  # "url" (a single .pth file) or "hf" (a Hugging Face hub repo)
    url: str  # download URL, or hub repo id for source "hf"
    filename: str  # file name inside weights.dir (for "hf": the repo's weights file)
    sha256_prefix: str = ""  # published digest prefix, checked when non-empty
    sha256: str = ""  # full digest, when published
    description: str = ""
    hf_files: tuple[str, ...] = field(default=())
    # no digest is published: the file is used only once ``fetch-weights`` has recorded its
    # sha256 in SHA256SUMS (trust on first fetch), never as a file that merely turned up
    locked_on_fetch: bool = False
    # a copy ships inside the package (``photostyle/_weights/<filename>``, with its licence), so an
    # offline install has it; it is verified against ``sha256`` like any other file
    shipped: bool = False
    # how to obtain a file that has no download URL (shown in the error when it is missing)
    how_to_get: str = ""

    def local_path(self, weights_dir: str | Path) -> Path:
        if self.source == "hf":
            return Path(weights_dir) / self.url / self.filename
        return Path(weights_dir) / self.filename


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "_weights"

_TV = "https://download.pytorch.org/models/"
REGISTRY: dict[str, WeightSpec] = {
    "vgg16-imagenet": WeightSpec(
        "vgg16-imagenet", "url", _TV + "vgg16-397923af.pth", "vgg16-397923af.pth", "397923af",
        description="torchvision VGG16_Weights.IMAGENET1K_V1 (fast-network loss network)",
    ),
    "vgg19-imagenet": WeightSpec(
        "vgg19-imagenet", "url", _TV + "vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth", "dcbb9e9d",
        description="torchvision VGG19_Weights.IMAGENET1K_V1 (Gatys/DPST/WCT encoders, style metric)",
    ),
    "deeplabv3-resnet101-coco": WeightSpec(
        "deeplabv3-resnet101-coco", "url", _TV + "deeplabv3_resnet101_coco-586e9e4e.pth",
        "deeplabv3_resnet101_coco-586e9e4e.pth", "586e9e4e",
        description="torchvision DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1 (21 classes)",
    ),
}
_WCT2 = "https://github.com/clovaai/WCT2/raw/master/model_checkpoints/"
for _opt in ("cat5", "sum"):  # MIT-licensed; no digest is published: the file's sha256 is recorded (SHA256SUMS)
    for _part in ("encoder", "decoder"):
        _file = f"wave_{_part}_{_opt}_l4.pth"
        REGISTRY[f"wct2-{_part}-{_opt}"] = WeightSpec(
            f"wct2-{_part}-{_opt}", "url", _WCT2 + _file, _file,
            description=f"clovaai/WCT2 {_file} (wct2 with decoder: published, option {_opt})", locked_on_fetch=True)
# Collaborative Distillation (Wang et al., CVPR 2020; MIT, licence in photostyle/_weights/collaborative-distillation):
# VGG-19 encoders distilled 16x, one per level relu1_1..relu5_1, and the WCT decoder trained for each.
# Upstream files are symlinks to these dated checkpoints; the URLs pin the commit.
_CD = "https://github.com/MingSun-Tse/Collaborative-Distillation/raw/4a269dc90020721ef9b279b2926c62f5bcd6d209/trained_models/"
_CD_FILES = {
    "encoder": ("wct_se_16x_new", ["20191110-133713_E20", "20191110-132713_E20", "20191110-132705_E20",
                                   "20191110-132643_E20", "20191109-211322_E20"]),
    "decoder": ("wct_se_16x_new_sd", ["20191111-091942_E20", "20191111-091932_E20", "20191111-091929_E20",
                                      "20191111-092553_E20", "20191110-204615_E20"]),
}
_CD_SHA256 = {
    "decoder1": "05f26ad40044c019da0cf731372d5bd2ee4b477825c7f45508da70b1cd5a95fd",
    "decoder2": "94dd26f0e69857f79bf284a43a3708aa05c09c2593427c7f6e400ad12ce314e6",
    "decoder3": "005faba27859435762a8a9386116c00629cd8835a01617d0a71defa577c42174",
    "decoder4": "902f65e2c6033d803d02df552eb898e5985190a7ae67d155e384826eec6f04cb",
    "decoder5": "17fd0f81622f01366eb21cb4d40140ee38cf988ed6eaf266629709c397a8b485",
    "encoder1": "f74755a65164a88e0db8cbb7d99d7078b9fa505df0953fac5123bfc7c84e0ea4",
    "encoder2": "cb654af6bae77176f8c7721c965483e865b987f2f1612dda1ba0d0b5c3819a61",
    "encoder3": "269cdd0e2634e3e1e5d3005b9e7eca0f4cc8077653fee1ac8c0cf1cbe9ab8758",
    "encoder4": "d2f059cbcd6669556a43aadef58d20c8b280462c18b60a9e7424a14dd271cd6b",
    "encoder5": "9417c34d0d8d621bc6af78be745f1b8d30f5f210efa01e50655c60eb3770816b",
}
for _part, (_folder, _dated) in _CD_FILES.items():
    for _k, _stamp in enumerate(_dated, start=1):
        REGISTRY[f"cd16x-{_part}{_k}"] = WeightSpec(
            f"cd16x-{_part}{_k}", "url", f"{_CD}{_folder}/{_stamp}.pth", f"collaborative-distillation/{_part}{_k}.pth",
            sha256=_CD_SHA256[f"{_part}{_k}"], shipped=True,
            description=f"Collaborative Distillation 16x {_part}, relu{_k}_1 (MIT; shipped with the package)")
# The ImageNet VGG-16 of Simonyan & Zisserman (CC BY 4.0, Visual Geometry Group, Oxford) as a
# torchvision ``vgg16().features`` state dict with the Caffe preprocessing folded into conv1_1:
# it takes torchvision-normalised RGB and its activations are at Caffe scale (about 255x torchvision's).
REGISTRY["vgg16-oxford"] = WeightSpec(
    "vgg16-oxford", "url", "", "vgg16-imagenet/vgg16-imagenet-oxford.pth",
    sha256="74bb8793c0fa67ae6915865dbc73fd175c6b8cde687bf68c8613d68eb90b7c40",
    description="ImageNet VGG-16 (Oxford VGG, CC BY 4.0), converted from Keras VGG16(weights='imagenet'); Caffe-scale",
    how_to_get=("no download URL: convert Keras's VGG16(weights='imagenet') as docs/weights.md describes, "
                "or use torchvision's VGG-16 (network: vgg16 falls back to 'vgg16-imagenet')"),
)
for _b in range(6):
    _repo = f"smp-hub/segformer-b{_b}-512x512-ade-160k"
    REGISTRY[f"segformer-b{_b}-ade20k"] = WeightSpec(
        f"segformer-b{_b}-ade20k", "hf", _repo, "model.safetensors",
        description=f"segmentation-models-pytorch Segformer-B{_b}, ADE20K 150 classes",
        hf_files=("config.json", "model.safetensors"),
    )


sha256_file = file_digest  # the name the resolver and the provenance code use


def read_sums(weights_dir: str | Path) -> dict[str, str]:
    sums_file = Path(weights_dir) / "SHA256SUMS"
    if not sums_file.exists():
        return {}
    sums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().removeprefix("./")] = digest
    return sums


def record_sum(weights_dir: str | Path, relname: str, digest: str) -> None:
    sums = read_sums(weights_dir)
    sums[relname] = digest
    text = "".join(f"{d}  {n}\n" for n, d in sorted(sums.items()))
    from photostyle.core.io import write_text_atomic

    write_text_atomic(Path(weights_dir) / "SHA256SUMS", text)


def verify(spec: WeightSpec, path: Path, weights_dir: str | Path | None = None) -> str:
    """Check a file against the published prefix/digest and the SHA256SUMS lock; return its digest."""
    digest = sha256_file(path)
    if spec.sha256 and digest != spec.sha256:
        raise ChecksumMismatch(f"{path}: sha256 {digest} != published {spec.sha256}")
    if spec.sha256_prefix and not digest.startswith(spec.sha256_prefix):
        raise ChecksumMismatch(
            f"{path}: sha256 {digest[:16]}... does not start with the published prefix {spec.sha256_prefix}"
        )
    if weights_dir is not None:
        relname = str(path.relative_to(weights_dir)) if path.is_relative_to(weights_dir) else path.name
        locked = read_sums(weights_dir).get(relname)
        if locked and locked != digest:
            raise ChecksumMismatch(f"{path}: sha256 {digest} != {locked} recorded in SHA256SUMS")
    return digest


def _cache_candidates(spec: WeightSpec) -> list[Path]:
    if spec.source == "url":
        return [_torch_hub_dir() / "checkpoints" / spec.filename]
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    snap = hf_home / "hub" / ("models--" + spec.url.replace("/", "--")) / "snapshots"
    return sorted(snap.glob(f"*/{spec.filename}")) if snap.exists() else []


def _host_of(spec: WeightSpec) -> str:
    if spec.source == "hf":
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://", 1)[-1].split("/")[0]
    return spec.url.split("://", 1)[-1].split("/")[0]


def _reachable(host: str, timeout_s: float = 3.0) -> bool:
    """A fast DNS + TCP check, so offline nodes fail in milliseconds, not after minutes of
    client retries (huggingface_hub retries for about 25 s)."""
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _download(spec: WeightSpec, weights_dir: Path) -> Path:
    if not spec.url:
        raise ConnectionError(spec.how_to_get or "this file has no download URL")
    host = _host_of(spec)
    if not _reachable(host):
        raise ConnectionError(f"{host} is not reachable from this machine")
    dest = spec.local_path(weights_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if spec.source == "url":
        tmp = dest.with_name(f".{dest.name}.part")
        import torch

        torch.hub.download_url_to_file(spec.url, str(tmp), progress=False)
        os.replace(tmp, dest)
    else:
        from huggingface_hub import hf_hub_download

        for fname in spec.hf_files:
            got = hf_hub_download(spec.url, fname)
            shutil.copyfile(got, dest.parent / fname)
    return dest


@dataclass(frozen=True)
class Resolved:
    spec: WeightSpec
    path: Path | None  # None when random
    provenance: str  # "sha256:<digest>" or "random, seed N"
    fallback: str = ""  # why random weights stand in for pretrained ones (weights.mode auto), else ""

    @property
    def is_random(self) -> bool:
        return self.path is None


def locate(spec: WeightSpec, weights_dir: str | Path, download: bool, search=()) -> Path:
    """Find (or fetch) a verified copy of ``spec``; raise :class:`WeightsUnavailable` if none.

    Looked up in ``weights_dir``, then each read-only folder of ``search`` (each may hold a
    SHA256SUMS that is honoured), then the copy shipped with the package, then the caches."""
    weights_dir = Path(weights_dir)
    tried = []
    local = spec.local_path(weights_dir)
    dirs = [weights_dir, *(Path(d) for d in search)]
    if spec.shipped:
        dirs.append(SHIPPED_DIR)
    for cand, base in [*((spec.local_path(d), d) for d in dirs), *((c, None) for c in _cache_candidates(spec))]:
        tried.append(str(cand))
        if cand.exists():
            verify(spec, cand, base)
            return cand
    if download:
        try:
            got = _download(spec, weights_dir)
            verify(spec, got, weights_dir)
            return got
        except ChecksumMismatch:
            raise
        except Exception as exc:  # no network on compute nodes: report, do not hang
            tried.append(f"download from {spec.url} failed: {exc.__class__.__name__}: {exc}")
    raise WeightsUnavailable(
        f"pretrained weights '{spec.name}' not found.\n"
        f"  file: {spec.filename}\n  source: {spec.url or spec.how_to_get}\n"
        f"  place it at: {local}\n"
        f"  (or run `snakemake fetch_weights` on a machine with internet access)\n"
        f"  looked in: " + "; ".join(tried)
    )


def resolve_cfg(name: str, weights_cfg: dict, seed: int) -> Resolved:
    """:func:`resolve` with the config's ``weights`` section (``mode``, ``dir``, ``download``, ``search``)."""
    w = weights_cfg
    return resolve(name, w["mode"], w["dir"], seed, w["download"], w.get("search", ()))


# registry entries each network can run on, in order of preference: the Oxford VGG-16 (Caffe-scale
# activations, available offline) before torchvision's (downloadable); losses built on these are
# scale-free, so either serves
NETWORK_WEIGHTS = {"vgg16": ("vgg16-oxford", "vgg16-imagenet"), "vgg19": ("vgg19-imagenet",)}


def resolve_network(arch: str, weights_cfg: dict, seed: int) -> Resolved:
    """The first of ``NETWORK_WEIGHTS[arch]`` that is obtainable; else what ``weights.mode`` says
    of the last one (an error for ``pretrained``, seeded random weights with a warning for ``auto``)."""
    names = NETWORK_WEIGHTS[arch]
    if weights_cfg["mode"] != "random":
        for name in names[:-1]:
            try:
                return resolve_cfg(name, {**weights_cfg, "mode": "pretrained"}, seed)
            except WeightsUnavailable:
                continue
    return resolve_cfg(names[-1], weights_cfg, seed)


def resolve(name: str, mode: str, weights_dir: str | Path, seed: int, download: bool = True,
            search=()) -> Resolved:
    """Decide which weights a model gets, according to ``weights.mode``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown weights '{name}'; known: {', '.join(sorted(REGISTRY))}")
    spec = REGISTRY[name]
    random_prov = f"random, seed {seed}"
    if mode == "random":
        return Resolved(spec, None, random_prov)
    try:
        path = locate(spec, weights_dir, download, search)
    except WeightsUnavailable as exc:
        if mode == "pretrained":
            raise
        msg = f"WEIGHTS: '{name}' unavailable, using RANDOM initialisation ({random_prov}). {exc}"
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return Resolved(spec, None, random_prov, fallback=f"{name} unavailable")
    if spec.locked_on_fetch:
        rel = str(path.relative_to(weights_dir)) if path.is_relative_to(weights_dir) else path.name
        if rel not in read_sums(weights_dir):  # verify() checked the lock when there is one
            raise ChecksumMismatch(f"{path}: '{name}' publishes no digest; run `photostyle fetch-weights {name}` "
                                   "(or `snakemake fetch_weights`), which records its sha256 in SHA256SUMS")
    return Resolved(spec, path, "sha256:" + sha256_file(path))


def _torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch (deciding which weights exist needs no torch):
    $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def load_state_dict(resolved: Resolved) -> dict[str, "torch.Tensor"]:
    """Load a verified ``.pth`` with ``weights_only=True`` (or ``.safetensors``)."""
    import torch

    if resolved.path is None:
        raise ValueError("random weights have no state dict")
    if resolved.path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(resolved.path))
    return torch.load(resolved.path, map_location="cpu", weights_only=True)


def fetch_all(names, weights_dir: str | Path) -> list[tuple[str, str]]:
    """Download and verify weights ahead of time; record full digests in SHA256SUMS."""
    weights_dir = Path(weights_dir)
    done = []
    for name in names:
        spec = REGISTRY[name]
        path = locate(spec, weights_dir, download=True)
        local = spec.local_path(weights_dir)
        if path != local:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, local)
        digest = verify(spec, local, weights_dir)
        record_sum(weights_dir, str(local.relative_to(weights_dir)), digest)
        done.append((name, digest))
    return done
