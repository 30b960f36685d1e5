"""Segmenters of the segment stage (:mod:`photostyle.stages.segment`): photos to label maps.

Models (config ``segmentation.model``):

* ``segformer-ade20k``: segmentation-models-pytorch Segformer, ADE20K 150 classes
  (``smp-hub/segformer-b{0..5}-512x512-ade-160k`` through the weights resolver);
* ``deeplabv3``: torchvision DeepLabV3-ResNet101, COCO with VOC labels (21 classes: no sky,
  tree or building -- mostly useful for people, animals, vehicles);
* ``features``: clusters of pretrained deep features (Collaborative Distillation's distilled
  VGG-19 encoder, ``relu4_1``, shipped with the package, so it always works offline),
  L2-normalised, plus a small position term; each photo is clustered on its own and its
  clusters' mean features are stored with its label map, so a content cluster is matched to the
  style cluster whose features are most alike (:func:`photostyle.ops.regions.match_features`);
* ``kmeans``: weight-free colour + position clustering in Lab + xy (last-resort fallback);
* ``labels``: user label maps (PNG named like the photo, values = group indices);
* ``none``: one region.

With ``weights.mode: auto`` and no weights, ``segformer-ade20k``/``deeplabv3`` fall back to
``features`` loudly (to ``kmeans`` only if that fails too), and the fallback is recorded (a
segmenter's ``fallback`` says why it runs instead of the configured one; the segment stage records
it in every label map's provenance and index row, and stylize and metrics carry it on); with
``random`` they run with random weights
(recorded as ``random, seed N``) -- useful for tests only.

Fine classes are mapped to coarse groups (``config/segmentation_groups.yaml``); regions under
``min_area`` are merged; the label maps written hold group ids (or cluster ids for features and
kmeans).
Big photos run at ``short_side`` and group scores are upsampled to full size in strips.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from photostyle.core.device import seed_everything
from photostyle.core.photo import PhotoRejected, derive_seed
from photostyle.core.tensors import imagenet_normalize
from photostyle.ops.regions import GroupTable, load_groups, merge_small_regions

log = logging.getLogger(__name__)

ADE20K_CLASSES = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard', 'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver', 'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag')  # index order of the ADE20K (SceneParsing-150) logits
# colours of the groups (and of k-means clusters) in label PNG palettes and overlays
PALETTE = [
    (128, 128, 128), (70, 130, 180), (60, 160, 60), (180, 90, 60), (30, 60, 200), (150, 120, 80),
    (90, 90, 90), (220, 20, 60), (240, 170, 30), (0, 200, 200), (200, 200, 0), (120, 60, 180),
    (255, 130, 180), (90, 200, 120), (20, 20, 20), (240, 240, 240),
]


class Segmenter:
    """Turns photos into label maps; ``label_space`` is ``groups`` or ``clusters``; ``fallback``:
    why this segmenter runs instead of the configured one ("" when it is the configured one)."""

    name = "none"
    label_space = "groups"
    provenance = "none"
    fallback = ""

    def segment(self, image: np.ndarray, row: dict) -> np.ndarray:
        return np.zeros(image.shape[:2], np.uint8)  # one region: group 0

    def segment_many(self, images: list[np.ndarray], rows: list[dict]) -> list[np.ndarray]:
        return [self.segment(img, row) for img, row in zip(images, rows)]


def _working_size(h: int, w: int, short_side: int, multiple: int = 32) -> tuple[int, int]:
    s = short_side / min(h, w)
    return (max(multiple, int(round(h * s / multiple)) * multiple), max(multiple, int(round(w * s / multiple)) * multiple))


def _upsampled_argmax(scores: torch.Tensor, size: tuple[int, int], strip: int = 512) -> np.ndarray:
    """Argmax of ``(G, h, w)`` scores bilinearly upsampled to ``size`` (align_corners=False).

    Bilinear interpolation is separable: the width is interpolated once (G x h x W), then each
    strip of output rows blends its two source rows, so memory stays at G x strip x W rather
    than G x H x W for a 12-megapixel photo.
    """
    h, w = size
    sh = scores.shape[-2]
    wide = F.interpolate(scores[:, None], size=(sh, w), mode="bilinear", align_corners=False)[:, 0]  # (G, sh, W)
    src = ((torch.arange(h, device=scores.device, dtype=torch.float32) + 0.5) * sh / h - 0.5).clamp(0, sh - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=sh - 1)
    frac = (src - lo).view(1, -1, 1)
    out = np.empty((h, w), np.uint8)
    for y0 in range(0, h, strip):
        y1 = min(h, y0 + strip)
        f = frac[:, y0:y1]
        rows = wide[:, lo[y0:y1]] * (1 - f) + wide[:, hi[y0:y1]] * f
        out[y0:y1] = rows.argmax(0).to(torch.uint8).cpu().numpy()
    return out


class NetworkSegmenter(Segmenter):
    """A semantic segmentation network with fine classes mapped to groups."""

    def __init__(self, name, model: torch.nn.Module, lut: np.ndarray, n_groups: int, provenance: str,
                 device, short_side: int):
        self.name, self.model, self.provenance, self.device, self.short_side = name, model, provenance, device, short_side
        self.model.eval().to(device)
        self.lut = torch.from_numpy(lut.astype(np.int64)).to(device)
        self.n_groups = n_groups

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _prepare(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image)).to(self.device).permute(2, 0, 1)[None].float() / 255
        x = F.interpolate(x, size=_working_size(h, w, self.short_side), mode="bilinear", align_corners=False,
                          antialias=True)
        return imagenet_normalize(x)

    def _to_labels(self, logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        logits = logits.float()  # (classes, h', w')
        # group score = log-sum-exp of its classes' logits
        groups = torch.full((self.n_groups, *logits.shape[-2:]), -1e4, device=logits.device)
        for g in range(self.n_groups):
            sel = (self.lut == g).nonzero().flatten()
            if len(sel):
                groups[g] = torch.logsumexp(logits[sel], dim=0)
        return _upsampled_argmax(groups, size)

    @torch.no_grad()
    def segment_many(self, images: list[np.ndarray], rows: list[dict]) -> list[np.ndarray]:
        """Batched inference: photos with the same working size share a forward pass."""
        prepared = [self._prepare(img) for img in images]
        out: list[np.ndarray | None] = [None] * len(images)
        by_size: dict[tuple, list[int]] = {}
        for i, x in enumerate(prepared):
            by_size.setdefault(tuple(x.shape[-2:]), []).append(i)
        for idx in by_size.values():
            logits = self.logits(torch.cat([prepared[i] for i in idx]))
            for j, i in enumerate(idx):
                out[i] = self._to_labels(logits[j], images[i].shape[:2])
        return out

    def segment(self, image: np.ndarray, row: dict) -> np.ndarray:
        return self.segment_many([image], [row])[0]


class DeepLab(NetworkSegmenter):
    def logits(self, x):
        return self.model(x)["out"]


class KMeansSegmenter(Segmenter):
    """Colour + position clustering (scipy k-means++ on Lab + xy at a working resolution)."""

    name = "kmeans"
    label_space = "clusters"

    def __init__(self, clusters: int, spatial_weight: float, iterations: int, short_side: int, seed: int):
        self.k, self.spatial_weight, self.iterations, self.short_side, self.seed = (
            clusters, spatial_weight, iterations, short_side, seed)

    def segment(self, image: np.ndarray, row: dict) -> np.ndarray:
        from scipy.cluster.vq import kmeans2
        from skimage.color import rgb2lab

        h, w = image.shape[:2]
        scale = min(1.0, self.short_side / min(h, w))
        small = np.asarray(Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                          Image.Resampling.BILINEAR))
        sh, sw = small.shape[:2]
        lab = rgb2lab(small).reshape(-1, 3) / np.array([100.0, 128.0, 128.0])
        yy, xx = np.mgrid[0:sh, 0:sw]
        xy = np.stack([yy.ravel() / max(sh, sw), xx.ravel() / max(sh, sw)], axis=1) * self.spatial_weight
        feats = np.concatenate([lab, xy], axis=1)
        rng = np.random.default_rng(derive_seed(self.seed, row.get("id", "")))
        _, labels = kmeans2(feats, min(self.k, len(feats)), iter=self.iterations, minit="++", seed=rng)
        # renumber clusters by first appearance so label values are stable and dense
        _, dense = np.unique(labels, return_inverse=True)
        lab_small = dense.reshape(sh, sw).astype(np.uint8)
        return np.asarray(Image.fromarray(lab_small).resize((w, h), Image.Resampling.NEAREST))


def _sq_dist(x: torch.Tensor, cent: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(N, k)`` (one matrix product; ``x2``: the rows' squared norms)."""
    return (x2[:, None] - 2 * x @ cent.T + (cent * cent).sum(1)[None]).clamp(min=0)


def kmeans_torch(x: torch.Tensor, k: int, iterations: int, seed: int, restarts: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded k-means++ (``restarts`` runs, the lowest inertia kept) of the rows of ``x`` ``(N, D)``:
    ``(labels (N,), centres (k', D))``. Deterministic for a given input and seed (CPU)."""
    n = x.shape[0]
    k = max(1, min(k, n))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x2 = (x * x).sum(1)
    best = None
    for _ in range(restarts):
        cent = x[torch.randint(n, (1,), generator=gen).item()][None]
        d2 = _sq_dist(x, cent, x2)[:, 0]
        while cent.shape[0] < k and float(d2.sum()) > 0:
            i = torch.multinomial((d2 / d2.sum()).double(), 1, generator=gen).item()
            cent = torch.cat([cent, x[i][None]])
            d2 = torch.minimum(d2, _sq_dist(x, x[i][None], x2)[:, 0])
        labels = None
        for _ in range(iterations):
            new = _sq_dist(x, cent, x2).argmin(1)
            if labels is not None and torch.equal(new, labels):
                break
            labels = new
            onehot = F.one_hot(labels, cent.shape[0]).to(x.dtype)  # (N, k)
            counts = onehot.sum(0)[:, None]
            cent = torch.where(counts > 0, onehot.T @ x / counts.clamp(min=1), cent)  # an empty cluster keeps its centre
        dist = _sq_dist(x, cent, x2)
        labels = dist.argmin(1)
        inertia = float(dist.gather(1, labels[:, None]).sum())
        if best is None or inertia < best[0] - 1e-9:
            best = (inertia, labels, cent)
    return best[1], best[2]


REGION_FEATURES_KEY = "photostyle-region-features"  # PNG text chunk of a label map: its clusters' mean features


class FeatureSegmenter(Segmenter):
    """Clusters of pretrained deep features: the distilled VGG-19 encoder's ``relu4_1`` (128
    channels, 1/8 of the working size; shipped weights), each feature vector L2-normalised, with
    the cell's position (``(y, x) / long side``) times ``position_weight`` appended; k-means++
    (torch, seeded by the config's seed only, so a photo gets the same labels whatever its name
    or job). Cluster distances are upsampled bilinearly to the photo's size and the nearest
    cluster taken, so borders follow the features rather than the 8 px grid.

    Each photo is clustered on its own (a content photo is segmented once, whatever the styles);
    ``region_features[photo id]`` holds the JSON of each cluster's mean normalised feature,
    written into the label map's PNG text (:data:`REGION_FEATURES_KEY`) for the matching.
    """

    name = "features"
    label_space = "features"
    layer = "relu4_1"

    def __init__(self, encoder: torch.nn.Module, clusters: int, position_weight: float, iterations: int,
                 short_side: int, seed: int, device, provenance: str):
        self.encoder = encoder.to(device).eval()
        self.k, self.position_weight, self.iterations = clusters, position_weight, iterations
        self.short_side, self.seed, self.device, self.provenance = short_side, seed, device, provenance
        self.region_features: dict[str, str] = {}

    @torch.no_grad()
    def features(self, image: np.ndarray) -> torch.Tensor:
        """``(h', w', 128)`` L2-normalised ``relu4_1`` features of the photo at ``short_side`` (CPU)."""
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None].float() / 255
        size = _working_size(h, w, self.short_side, multiple=8)  # every photo at one scale: features comparable
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        f = F.normalize(self.encoder(x)[0].float(), dim=0)
        return f.permute(1, 2, 0).cpu()

    def points(self, feats: torch.Tensor) -> torch.Tensor:
        """The clustered vectors: features and the weighted position of each cell, ``(h'w', C + 2)``."""
        fh, fw, c = feats.shape
        yy, xx = torch.meshgrid(torch.arange(fh, dtype=torch.float32), torch.arange(fw, dtype=torch.float32),
                                indexing="ij")
        pos = torch.stack([yy, xx], -1) / max(fh, fw) * self.position_weight
        return torch.cat([feats, pos], -1).reshape(-1, c + 2)

    @torch.no_grad()
    def segment(self, image: np.ndarray, row: dict) -> np.ndarray:
        import json

        feats = self.features(image)
        fh, fw, c = feats.shape
        pts = self.points(feats)
        labels, cent = kmeans_torch(pts.double(), self.k, self.iterations, derive_seed(self.seed, "features"))
        # renumber by first appearance in raster order: label values do not depend on the initialisation
        order = list(dict.fromkeys(labels.tolist()))
        cent = cent[order].float()
        dist = _sq_dist(pts, cent, (pts * pts).sum(1))  # (h'w', k)
        full = _upsampled_argmax(-dist.T.reshape(len(order), fh, fw), image.shape[:2])
        grid = dist.argmin(1)
        means = {}
        for j in range(len(order)):
            sel = grid == j
            v = feats.reshape(-1, c)[sel].mean(0) if sel.any() else cent[j, :c]
            means[str(j)] = [round(float(t), 4) for t in F.normalize(v, dim=0)]
        self.region_features[row.get("id", "")] = json.dumps(
            {"layer": self.layer, "clusters": means}, separators=(",", ":"))
        return full


ASPECT_TOLERANCE = 0.01


def rounding_off(map_hw: tuple[int, int], photo_hw: tuple[int, int]) -> bool:
    """Whether a label map of ``map_hw`` (height, width) is the photo's ``photo_hw`` but for
    rounding: the same aspect ratio within 1 % (a pixel off on a side of 100 px or more, at
    any scale)."""
    (mh, mw), (ph, pw) = map_hw, photo_hw
    if min(mh, mw, ph, pw) <= 0:
        return False
    return abs((mw / mh) / (pw / ph) - 1) < ASPECT_TOLERANCE


class LabelSegmenter(Segmenter):
    """User label maps: ``<labels_dir>/<photo's relative path>`` with the extension ``.png``
    (or ``.jpg``/``.jpeg`` for colour-coded masks saved as JPEG).

    ``labels_format`` (``auto`` tells them apart per file):

    * ``groups``: mode L or P, pixel values are group indices; or RGB, every colour a group colour
      of ``PALETTE`` exactly;
    * ``dpst``: colour-coded masks as in Deep Photo Style Transfer, FastPhotoStyle and WCT2 (blue,
      green, black, white, red, yellow, grey, light blue, purple; within 0.1 per channel, so
      JPEG masks work); content and style regions then match by equal colour
      (``label_space`` ``colours``).

    A map of the photo's original size is resized (nearest) when ingest capped the photo's
    megapixels; so is, with a warning, a map whose size differs from the photo's only by
    rounding (:func:`rounding_off`: DPST's own examples pair a 700x393 map with a 700x394
    photo). Any other size mismatch, and unknown values or colours, are errors.
    """

    name = "labels"
    EXTENSIONS = (".png", ".jpg", ".jpeg")

    def __init__(self, labels_dir: str | Path, table: GroupTable, labels_format: str = "auto"):
        self.dir, self.table, self.format = Path(labels_dir), table, labels_format
        self.provenance = f"user labels in {labels_dir} ({labels_format})"
        self.spaces: dict[str, str] = {}  # photo id -> "groups" or "colours", as read
        self.warnings: dict[str, str] = {}  # photo id -> why its map was resized (a rounding-off size)

    def path_for(self, relpath: str) -> Path:
        base = self.dir / Path(relpath)
        found = [base.with_suffix(ext) for ext in self.EXTENSIONS if base.with_suffix(ext).exists()]
        return found[0] if found else base.with_suffix(".png")

    def _groups(self, im, path) -> np.ndarray:
        n = len(self.table.groups)
        if im.mode in ("L", "P", "I", "I;16"):
            arr = np.asarray(im).astype(np.int64)
            bad = np.unique(arr[arr >= n])
            if len(bad):
                raise PhotoRejected(f"label map {path}: unknown label values {bad[:8].tolist()} "
                                    f"(allowed 0..{n - 1}: {', '.join(self.table.groups)})")
            return arr
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
        key = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
        lut = {r << 16 | g << 8 | b: i for i, (r, g, b) in enumerate(PALETTE[:n])}
        unknown = sorted(set(np.unique(key).tolist()) - set(lut))
        if unknown:
            cols = [f"#{u:06x}" for u in unknown[:8]]
            raise PhotoRejected(f"label map {path}: unknown colours {cols}; group colours: " + ", ".join(
                f"{g}=#{r:02x}{gg:02x}{b:02x}" for g, (r, gg, b) in zip(self.table.groups, PALETTE))
                + "; for colour-coded masks (DPST) set segmentation.labels_format: dpst")
        return np.vectorize(lut.get)(key)

    def _read(self, path: Path) -> tuple[np.ndarray, str]:
        from photostyle.ops.regions import UnknownMaskColours, colour_mask_labels

        with Image.open(path) as im:
            im.load()
        if self.format == "groups" or (self.format == "auto" and im.mode in ("L", "P", "I", "I;16")):
            return self._groups(im, path), "groups"
        as_groups = None
        if self.format == "auto":
            try:
                return self._groups(im, path), "groups"
            except PhotoRejected as exc:  # not group colours: try the colour-coded format
                as_groups = str(exc)
        try:
            return colour_mask_labels(np.asarray(im.convert("RGB"))), "colours"
        except UnknownMaskColours as exc:
            if as_groups:  # neither format: say what each reading found
                raise PhotoRejected(f"{as_groups}; read as a colour-coded mask instead: {exc}") from None
            raise PhotoRejected(f"label map {path}: {exc}") from None

    def segment(self, image: np.ndarray, row: dict) -> np.ndarray:
        path = self.path_for(row["relpath"])
        if not path.exists():
            raise PhotoRejected(f"no label map at {path} (nor with .jpg/.jpeg)")
        arr, space = self._read(path)
        h, w = image.shape[:2]
        self.warnings.pop(row.get("id", ""), None)
        if arr.shape != (h, w):
            orig = (int(row.get("orig_height") or 0), int(row.get("orig_width") or 0))
            if arr.shape != orig:
                ph, pw = orig if all(orig) else (h, w)  # the photo's size as the user knows it
                if not rounding_off(arr.shape, (ph, pw)):
                    raise PhotoRejected(f"label map {path} is {arr.shape[1]}x{arr.shape[0]}, photo is {pw}x{ph}")
                self.warnings[row.get("id", "")] = (
                    f"label map {path.name} is {arr.shape[1]}x{arr.shape[0]}, photo is {pw}x{ph}: "
                    "resized (nearest neighbour)")
            arr = np.asarray(Image.fromarray(arr.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST))
        self.spaces[row.get("id", "")] = space
        return arr.astype(np.uint8)


def build_segmenter(cfg: dict, weights_cfg: dict, seed: int, device) -> Segmenter:
    """The configured segmenter, with its weights resolved (or the documented fallback)."""
    from photostyle.core.weights import load_state_dict, resolve_cfg

    model = cfg["model"]
    table = load_groups(cfg["groups_file"])
    km = cfg["kmeans"]
    kmeans = KMeansSegmenter(km["clusters"], km["spatial_weight"], km["iterations"], cfg["short_side"], seed)
    if model == "none":
        return Segmenter()
    if model == "kmeans":
        return kmeans
    if model == "labels":
        if not cfg.get("labels_dir"):
            raise ValueError("segmentation.model: labels needs segmentation.labels_dir")
        return LabelSegmenter(cfg["labels_dir"], table, cfg.get("labels_format", "auto"))
    if model == "features":
        return build_features(cfg, weights_cfg, seed, device)
    wname = f"segformer-{cfg['segformer_variant']}-ade20k" if model == "segformer-ade20k" else "deeplabv3-resnet101-coco"
    resolved = resolve_cfg(wname, weights_cfg, seed)
    if resolved.is_random and weights_cfg["mode"] == "auto":
        why = f"{wname} weights unavailable"
        try:  # the shipped encoder: works offline
            seg = build_features(cfg, weights_cfg, seed, device, why=why)
            seg.fallback = why
            log.warning("segmentation: %s; using the pretrained-feature segmentation (%s)", why, seg.provenance)
            return seg
        except Exception as exc:  # noqa: BLE001 -- any failure: the weight-free last resort
            kmeans.provenance = f"none (kmeans: {why}; features failed: {exc.__class__.__name__}: {exc})"
            kmeans.fallback = f"{why}; features failed: {exc.__class__.__name__}"
        log.warning("segmentation: %s; using the weight-free kmeans segmentation (%s)", why, kmeans.provenance)
        return kmeans
    seed_everything(seed)
    if model == "segformer-ade20k":
        import segmentation_models_pytorch as smp

        if resolved.is_random:
            net = smp.Segformer(encoder_name=f"mit_{cfg['segformer_variant']}", encoder_weights=None, classes=150)
        else:
            net = smp.from_pretrained(str(resolved.path.parent))
        lut = table.fine_to_group_ids("ade20k", list(ADE20K_CLASSES))
        return NetworkSegmenter(model, net, lut, len(table.groups), resolved.provenance, device, cfg["short_side"])
    from torchvision.models.segmentation import DeepLabV3_ResNet101_Weights, deeplabv3_resnet101

    net = deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    if not resolved.is_random:
        net.load_state_dict(load_state_dict(resolved))
    voc = DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1.meta["categories"]
    return DeepLab(model, net, table.fine_to_group_ids("voc", voc), len(table.groups), resolved.provenance,
                   device, cfg["short_side"])


FEATURES_ENCODER = ("cd16x-encoder4", 4)  # registry name, level: relu4_1, 128 channels


def build_features(cfg: dict, weights_cfg: dict, seed: int, device, why: str = "") -> FeatureSegmenter:
    """The ``features`` segmenter on the shipped distilled encoder (always its pretrained weights,
    verified by their full digest; never downloaded). ``why``: the fallback's reason, recorded in
    the provenance (``sha256:... (features cd16x relu4_1; fallback: ... unavailable)``)."""
    from photostyle.core.weights import resolve
    from photostyle.nets.distilled import load

    name, level = FEATURES_ENCODER
    resolved = resolve(name, "pretrained", (weights_cfg or {}).get("dir", "weights"), seed, download=False,
                       search=(weights_cfg or {}).get("search", ()))
    encoder = load("encoder", level, resolved, seed)
    fc = cfg["features"]
    note = f"features cd16x relu{level}_1" + (f"; fallback: {why}" if why else "")
    return FeatureSegmenter(encoder, fc["clusters"], fc["position_weight"], fc["iterations"], cfg["short_side"],
                            seed, device, f"{resolved.provenance} ({note})")


def palette_png(labels: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """A label map as a palette PNG (group colours), with optional text chunks (provenance)."""
    import io

    from PIL import PngImagePlugin

    im = Image.fromarray(labels, "P")
    im.putpalette([c for rgb in PALETTE for c in rgb])
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, str(v))
    buf = io.BytesIO()
    im.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def overlay(image: np.ndarray, labels: np.ndarray, thumb_px: int = 256) -> bytes:
    """A small JPEG preview: the photo blended with its label colours."""
    import io

    colours = np.array(PALETTE, np.float32)[labels % len(PALETTE)]
    mix = (0.5 * image.astype(np.float32) + 0.5 * colours).astype(np.uint8)
    im = Image.fromarray(mix)
    im.thumbnail((thumb_px, thumb_px), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def areas_text(labels: np.ndarray, names: tuple[str, ...] | None) -> str:
    ids, counts = np.unique(labels, return_counts=True)
    return ";".join(f"{names[i] if names and i < len(names) else f'c{i}'}:{c / labels.size:.4f}"
                    for i, c in zip(ids.tolist(), counts.tolist()))
