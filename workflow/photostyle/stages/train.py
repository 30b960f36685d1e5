"""Train stage: the models that methods declare as artifacts (:class:`photostyle.methods.Artifact`).

Each trainer below makes one kind of artifact, ``results/train/<trainer>/<key>/model.pt`` with
its ``losses.csv``: ``fast`` a per-style network of the fast method
(:mod:`photostyle.nets.fastnet`), ``decoder`` a decoder of the universal methods, once per
family and level (:mod:`photostyle.nets.universal`). The rule ``train_model`` runs whichever
artifacts the selected methods declare; its params carry the trainer's config section only.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from dataclasses import dataclass

from photostyle.core.collection import read_listing
from photostyle.core.io import read_csv_dicts
from photostyle.core.schema import config_hash
from photostyle.stages.common import job_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trainer:
    name: str
    section: str  # the config section of its settings
    per_style: bool  # one model per style (its input: the style's ingest table)


TRAINERS = {t.name: t for t in (Trainer("fast", "train", True), Trainer("decoder", "decoders", False),
                                 Trainer("munit", "translation", False))}


def settings(config: dict, trainer: str) -> dict:
    """What a trainer's models depend on: its config section, seed, device, weights, limits."""
    section = TRAINERS[trainer].section
    return {section: config[section], "weights": config["weights"], **job_settings(config)}


def run_train(trainer: str, key: str, args: dict, listing, dataset_root, settings: dict, model_out, losses_out,
              code_version: str, style_table=None, domain_listing=None):
    """Train one artifact (the rule's entry point)."""
    if trainer == "fast":
        return run_train_fast(style_table, listing, dataset_root, settings, model_out, losses_out, code_version)
    if trainer == "munit":
        return run_train_munit(args["domain"], domain_listing, listing, dataset_root, settings, model_out,
                               losses_out, code_version)
    return run_train_decoder(args["family"], int(args["level"]), listing, dataset_root, settings, model_out,
                             losses_out, code_version)


def checkpoint_path(model_out) -> Path:
    """Not a Snakemake output, so it survives a killed or failed job and the rerun resumes."""
    return Path(model_out).with_name("checkpoint.pt")


def load_training_photos(listing, dataset_root, limits) -> list:
    """The listed training photos, decoded; unusable ones are logged and left out."""
    from photostyle.core.photo import PhotoRejected, load_photo

    photos = []
    for e in read_listing(listing):
        try:
            photos.append(load_photo(Path(dataset_root) / e.relpath, limits)[0])
        except PhotoRejected as exc:
            log.warning("training photo %s skipped: %s", e.relpath, exc)
    return photos


def run_train_fast(style_table, listing, dataset_root, settings: dict, model_out, losses_out,
                   code_version: str, stop_after: int | None = None):
    """``settings``: ``train`` (the config section), ``seed``, ``device``, ``weights``, ``ingest``."""
    import torch
    import torch.nn.functional as F

    from photostyle.core.device import start_job
    from photostyle.core.photo import load_photo
    from photostyle.core.tensors import to_tensor
    from photostyle.nets.fastnet import train
    from photostyle.nets.vgg import VGGFeatures, deepest_layer

    job = start_job(settings)
    device, limits = job.device, job.limits
    cfg = {**settings["train"], "seed": settings["seed"]}
    (srow,) = read_csv_dicts(style_table)
    if srow["status"] != "ok":  # the style is skipped downstream; leave a marker, not a failed job
        from photostyle.nets.fastnet import LOSS_COLUMNS
        from photostyle.core.io import atomic_path, write_csv_atomic

        log.warning("style photo rejected at ingest (%s): no network trained", srow["reason"])
        with atomic_path(model_out) as tmp:
            torch.save({"rejected": srow["reason"]}, tmp)
        write_csv_atomic(losses_out, LOSS_COLUMNS, [])
        return None
    style = to_tensor(load_photo(srow["path"], limits, expect_sha256=srow["sha256"])[0], device)
    s = cfg["style_size"] / max(style.shape[-2:])
    if s < 1:
        style = F.interpolate(style, scale_factor=s, mode="bilinear", antialias=True, align_corners=False)
    photos = load_training_photos(listing, dataset_root, limits)
    log.info("training on %d photos from %s; device %s", len(photos), dataset_root, job.device_desc)
    arch = cfg["vgg"]
    last = deepest_layer(arch, list(cfg["content_layers"]) + list(cfg["style_layers"]))
    vgg = VGGFeatures.load(arch, settings["weights"], settings["seed"], last).to(device)
    listing_digest = hashlib.sha256(Path(listing).read_bytes()).hexdigest()
    meta = {
        "config_hash": config_hash({"settings": settings, "style": srow["sha256"], "listing": listing_digest}),
        "style_sha256": srow["sha256"], "loss_network": f"{vgg.weights_name}={vgg.provenance}",
        "code_version": code_version, "device": job.device_desc, "seed": str(settings["seed"]),
        "photos": str(len(photos)), "steps": str(cfg["steps"]),
    }
    log.info("loss network %s", meta["loss_network"])
    return train(style, photos, cfg, vgg, model_out, checkpoint_path(model_out), losses_out, meta, device,
                 stop_after=stop_after)


def run_train_decoder(family: str, level: int, listing, dataset_root, settings: dict, model_out, losses_out,
                      code_version: str, stop_after: int | None = None):
    """``settings``: ``decoders`` (the config section), ``seed``, ``device``, ``weights``, ``ingest``."""
    from photostyle.core.device import start_job
    from photostyle.nets.universal import Encoder, train_decoder

    job = start_job(settings)
    cfg = {**settings["decoders"], "seed": settings["seed"]}
    photos = load_training_photos(listing, dataset_root, job.limits)
    log.info("decoder %s relu%d_1: training on %d photos from %s; device %s",
             family, level, len(photos), dataset_root, job.device_desc)
    wave = family.startswith("wave_")  # WCT2's wavelet decoder (one network through relu4_1)
    encoder = Encoder.load(settings["weights"], settings["seed"], 4 if wave else level).to(job.device)
    listing_digest = hashlib.sha256(Path(listing).read_bytes()).hexdigest()
    meta = {
        "config_hash": config_hash({"settings": settings, "family": family, "level": level, "listing": listing_digest}),
        "encoder": f"vgg19={encoder.provenance}", "family": family, "level": str(level),
        "code_version": code_version, "device": job.device_desc, "seed": str(settings["seed"]),
        "photos": str(len(photos)), "steps": str(cfg["steps"]),
    }
    log.info("encoder %s", meta["encoder"])
    if wave:
        from photostyle.nets import wct2

        wave_encoder = wct2.WaveEncoder.from_vgg19(encoder.vgg.features, family.removeprefix("wave_"))
        return wct2.train_decoder(family.removeprefix("wave_"), wave_encoder, photos, cfg, model_out,
                                  checkpoint_path(model_out), losses_out, meta, job.device, stop_after=stop_after)
    return train_decoder(level, family, encoder, photos, cfg, model_out, checkpoint_path(model_out), losses_out,
                         meta, job.device, stop_after=stop_after)


def run_train_munit(domain_root, domain_listing, listing, dataset_root, settings: dict, model_out, losses_out,
                    code_version: str, stop_after: int | None = None):
    """``settings``: ``translation`` (the config section), ``seed``, ``device``, ``ingest``. Domain a:
    the training photos of the collection; domain b: the listed photos of ``domain_root``."""
    from photostyle.core.device import start_job
    from photostyle.nets.munit import train

    job = start_job(settings)
    cfg = {**settings["translation"], "seed": settings["seed"]}
    photos_a = load_training_photos(listing, dataset_root, job.limits)
    photos_b = load_training_photos(domain_listing, domain_root, job.limits)
    log.info("munit: %d photos of the collection, %d of the domain %s; device %s",
             len(photos_a), len(photos_b), domain_root, job.device_desc)
    digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (listing, domain_listing)]
    meta = {
        "config_hash": config_hash({"settings": settings, "domain": str(domain_root), "listings": digests}),
        "domain": str(domain_root), "code_version": code_version, "device": job.device_desc,
        "seed": str(settings["seed"]), "photos": f"{len(photos_a)}+{len(photos_b)}", "steps": str(cfg["steps"]),
    }
    return train(photos_a, photos_b, cfg, model_out, checkpoint_path(model_out), losses_out, meta, job.device,
                 stop_after=stop_after)
