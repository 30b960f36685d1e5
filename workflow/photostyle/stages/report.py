"""Figures for the Snakemake report: image grids, metric plots and per-rule runtimes."""

from __future__ import annotations

import io
import re
from pathlib import Path

from photostyle.core.io import read_csv_dicts, write_bytes_atomic
from photostyle.core.photo import PhotoLimits, PhotoRejected, load_photo
from photostyle.stages.common import trace_path

plt = np = pd = Image = None  # imported by _libs() when a figure is made (the Snakefile imports this module)


def settings(config: dict, what: str = "") -> dict:
    """The report's settings; ``what="shoot"``: a shoot grid's (:func:`shoot_settings`)."""
    return shoot_settings(config) if what == "shoot" else dict(config["report"])


def _libs() -> None:
    global plt, np, pd, Image
    if plt is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt_
        import numpy as np_
        import pandas as pd_
        from PIL import Image as Image_

        plt, np, pd, Image = plt_, np_, pd_, Image_


def _save(fig, out) -> None:
    _libs()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    write_bytes_atomic(out, buf.getvalue())


def _thumb(img: np.ndarray, px: int) -> np.ndarray:
    _libs()
    im = Image.fromarray(img)
    im.thumbnail((px, px), Image.Resampling.LANCZOS)
    return np.asarray(im)


_WEIGHT_NAMES = {"cd16x": "distilled VGG-19 (shipped)", "vgg16-oxford": "VGG-16 (Oxford)",
                 "vgg16-imagenet": "VGG-16 (torchvision)", "vgg19-imagenet": "VGG-19 (torchvision)"}


def weights_label(provenance: str) -> str:
    """A short line for a grid column: which pretrained weights an output ran on (from its
    ``weights`` provenance, ``name=sha256:...; ...``); RANDOM stands out."""
    parts = [p.split("=", 1) for p in (provenance or "").split("; ") if "=" in p]
    if not parts:
        return "no weights"
    if any("random" in v for _, v in parts):
        return "RANDOM weights"
    names = []
    for name, _ in parts:
        if "/" in name:  # a trained model (fast/<style>, decoder/<family>/...): its digest is in the provenance
            label = "trained " + name.split("/")[0]
        else:
            label = _WEIGHT_NAMES.get("cd16x" if name.startswith("cd16x-") else name, name)
        if label not in names:
            names.append(label)
    return ", ".join(names)


def image_grid(style_id: str, manifest, style_table, indexes: list[str], out, n_photos: int = 6,
               thumb_px: int = 256) -> int:
    """content | style | each method raw | each method refined, for a sample of photos."""
    _libs()
    limits = PhotoLimits(max_megapixels=1e9, max_decode_megapixels=1e9)
    photos = {r["id"]: r for r in read_csv_dicts(manifest) if r["kind"] == "content"}
    style_row = next((r for r in read_csv_dicts(style_table) if r["id"] == style_id and r["status"] == "ok"), None)
    outputs: dict[tuple[str, str], dict[str, dict]] = {}
    for idx in indexes:
        for e in read_csv_dicts(idx):
            if e["style"] == style_id:
                outputs.setdefault((e["method"], e["variant"]), {})[e["photo_id"]] = e
    columns = sorted(outputs, key=lambda mv: (mv[1] != "raw", mv[0]))
    ok_ids = sorted(pid for pid in photos if all(
        outputs[c].get(pid, {}).get("status") in ("ok", "skipped") for c in columns))[:n_photos]
    n_cols = 2 + len(columns)
    rows = max(1, len(ok_ids))
    fig, axes = plt.subplots(rows, n_cols, figsize=(2.2 * n_cols, 2.2 * rows + 0.4), squeeze=False)
    style_img = None
    if style_row is not None:
        try:
            style_img = _thumb(load_photo(style_row["path"], limits)[0], thumb_px)
        except PhotoRejected:
            style_img = None
    titles = ["content", "style"] + [
        f"{m}\n{v}\n{weights_label(next(iter(outputs[(m, v)].values()), {}).get('weights', ''))}" for m, v in columns]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=8)
    for r, pid in enumerate(ok_ids):
        panels = [_thumb(load_photo(photos[pid]["path"], limits)[0], thumb_px), style_img]
        for c in columns:
            e = outputs[c].get(pid)
            panels.append(_thumb(np.asarray(Image.open(e["output"]).convert("RGB")), thumb_px)
                          if e and e.get("status") == "ok" else None)
        for ax, img in zip(axes[r], panels):
            if img is not None:
                ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(pid, fontsize=6)
    if not ok_ids:
        axes[0][0].text(0.5, 0.5, "no photos", ha="center")
    fig.suptitle(f"style: {style_id}", fontsize=10)
    fig.tight_layout()
    _save(fig, out)
    return len(ok_ids)


def metrics_scatter(per_image_csv, out) -> None:
    """Structure (SSIM) against colour distance to the style, per method x variant x style."""
    _libs()
    df = pd.read_csv(per_image_csv)
    df = df[df["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if len(df):
        g = df.groupby(["method", "variant", "style"], sort=True)[["ssim_lum", "colour_dist", "colour_dist_content"]].mean().reset_index()
        for (method, variant), sub in g.groupby(["method", "variant"], sort=True):
            ax.scatter(sub["colour_dist"], sub["ssim_lum"], marker="o" if variant == "raw" else "^",
                       label=f"{method} ({variant})", s=40)
        base = df.groupby("style")["colour_dist_content"].mean()
        ax.scatter(base.values, np.ones(len(base)), marker="x", c="k", label="content (no transfer)")
    ax.set_xlabel("colour distance to style (sliced Wasserstein, Lab; lower = closer)")
    ax.set_ylabel("SSIM of luminance vs content (higher = more structure kept)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, out)


def runtime_bars(benchmark_files: list[str], out) -> None:
    """Summed wall-clock seconds per rule from Snakemake ``benchmark:`` files."""
    _libs()
    totals: dict[str, float] = {}
    for f in benchmark_files:
        p = Path(f)
        try:
            df = pd.read_csv(p, sep="\t")
        except (OSError, pd.errors.EmptyDataError):
            continue
        parts = p.parts  # .../benchmarks/<rule>/<wildcards...>.tsv
        name = parts[parts.index("benchmarks") + 1] if "benchmarks" in parts[:-1] else p.stem
        totals[name] = totals.get(name, 0.0) + float(df["s"].sum())
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = sorted(totals)
    ax.barh(names, [totals[n] for n in names])
    ax.set_xlabel("wall-clock seconds, summed over jobs")
    fig.tight_layout()
    _save(fig, out)


def segmentation_sheet(indexes: list[str], out, n_photos: int = 6) -> None:
    """Overlays (photo blended with its label colours) of a sample of content photos and of every
    style, titled with the model and the regions found."""
    _libs()
    rows = [r for idx in sorted(indexes) for r in read_csv_dicts(idx) if r["status"] == "ok"]
    content = sorted((r for r in rows if r["kind"] == "content"), key=lambda r: r["photo_id"])[:n_photos]
    styles = sorted((r for r in rows if r["kind"] == "style"), key=lambda r: r["photo_id"])
    panels = content + styles
    cols = 4
    n_rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.2 * cols, 2.9 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, r in zip(axes.ravel(), panels):
        ax.imshow(np.asarray(Image.open(r["overlay"]).convert("RGB")))
        areas = ", ".join(a.split(":")[0] for a in r["areas"].split(";")[:5])
        ax.set_title(f"{r['kind']}: {r['photo_id'][:24]}\n{r['model']} [{areas}]", fontsize=7)
    if panels:
        used = panels[0].get("segmenter") or f"{panels[0]['model']} (weights: {panels[0]['weights']})"
        fig.suptitle(f"segmentation: {used}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)


def _trace_files(indexes: list[str], n_photos: int) -> list[tuple[str, Path]]:
    """(label, trace CSV) of the first ``n_photos`` outputs per method that have a trace."""
    found: dict[str, list] = {}
    for idx in sorted(indexes):
        for e in read_csv_dicts(idx):
            if e["status"] != "ok" or e["variant"] != "raw":
                continue
            path = trace_path(Path(e["output"]))
            if path.exists() and len(found.setdefault(e["method"], [])) < n_photos:
                found[e["method"]].append((f"{e['method']}: {e['photo_id'][:16]} / {e['style'][:12]}", path))
    return [item for method in sorted(found) for item in found[method]]


def loss_curves(out, indexes: list[str] = (), training_logs: list[str] = (), n_photos: int = 6) -> None:
    """Training losses per step (one panel per training log) and the losses of optimising
    methods per evaluation (one panel per method), from the grid sample of photos."""
    _libs()
    panels: list[tuple[str, list[tuple[str, pd.DataFrame, str]]]] = []
    for log_file in training_logs:
        df = pd.read_csv(log_file)
        if df.empty:  # e.g. a style rejected at ingest: nothing was trained
            continue
        cols = [c for c in df.columns if c not in ("step", "seconds") and df[c].notna().any()]
        parent = Path(log_file).parent
        name = f"decoder {parent.parent.name} {parent.name}" if parent.parent.name in ("upsample", "unpool") \
            else parent.name[:28]
        title = f"training: {name}"
        model = Path(log_file).with_name("model.pt")
        if model.exists():
            from photostyle.nets.fastnet import read_meta

            meta = read_meta(model)
            for key in ("loss_network", "encoder"):  # fast networks / decoders
                if "random" in meta.get(key, ""):
                    title += f"\n({key.replace('_', ' ')} {meta[key]})"
        panels.append((title, [(c, df, c) for c in cols]))
    by_method: dict[str, list] = {}
    for label, path in _trace_files(list(indexes), n_photos):
        by_method.setdefault(label.split(":")[0], []).append((label.split(": ", 1)[1], pd.read_csv(path), "total"))
    panels += [(f"{m}: total loss per evaluation", curves) for m, curves in sorted(by_method.items())]
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels):
        for label, df, col in curves:
            x = df["step"] if "step" in df.columns else df["evaluation"]
            ax.plot(x, df[col], label=label, lw=1)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("step" if curves and "step" in curves[0][1].columns else "loss evaluation")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no training or optimisation runs", ha="center")
    fig.tight_layout()
    _save(fig, out)


# --- tables: the report shows an HTML page inside itself, but offers a CSV only as a data: link
# that browsers will not open; so every table of the report is also written as a small HTML page.

TABLE_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 12px; color: #222; }
p.note { color: #555; margin: 0 0 8px; }
.wrap { overflow: auto; max-height: 92vh; border: 1px solid #ccc; }
table { border-collapse: collapse; white-space: nowrap; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { position: sticky; top: 0; background: #f0f0f0; border-bottom: 1px solid #bbb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
td.warn { color: #8a5300; } td.bad { color: #b00020; font-weight: 600; }
"""
_FLOAT = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)$")


def _cell(column: str, value: str) -> str:
    """One ``<td>``: numbers right-aligned, floats to 4 significant digits; statuses coloured."""
    import html

    cls = ""
    if _FLOAT.match(value):
        value, cls = f"{float(value):.4g}", "num"
    elif value.isdigit() and column != "shard":
        cls = "num"
    elif column == "status" and value in ("failed", "skipped") or column == "error" and value:
        cls = "bad"
    elif column == "warning" and value:
        cls = "warn"
    return f'<td class="{cls}">{html.escape(value)}</td>' if cls else f"<td>{html.escape(value)}</td>"


def table_html(csv_path, out, max_rows: int = 1000) -> int:
    """``csv_path`` as a self-contained HTML page (header kept in view while scrolling), with at
    most ``max_rows`` rows and a note saying where the full table is. Returns the rows shown."""
    import csv
    import html

    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows, total = [], 0
        for row in reader:
            total += 1
            if len(rows) < max_rows:
                rows.append(row)
    name = Path(csv_path).name
    note = (f"{total} row{'s' * (total != 1)}" + (f"; the first {len(rows)} shown" if len(rows) < total else "")
            + f" &middot; full table: <code>{html.escape(str(csv_path))}</code>")
    body = "\n".join("<tr>" + "".join(_cell(c, v) for c, v in zip(header, r)) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{max(1, len(header))}"><em>no rows</em></td></tr>'
    page = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(name)}</title>'
            f"<style>{TABLE_STYLE}</style></head><body>\n<p class=\"note\"><strong>{html.escape(name)}</strong>: {note}</p>\n"
            f'<div class="wrap"><table>\n<thead><tr>{"".join(f"<th>{html.escape(c)}</th>" for c in header)}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table></div>\n</body></html>\n")
    write_bytes_atomic(out, page.encode("utf-8"))
    return len(rows)


def shoot_settings(config: dict) -> dict:
    """What a shoot grid depends on: the report's sizes, how photos decode, the scope, the
    scoped methods' params (their photo-scope column is computed here) and the matching."""
    from photostyle.methods import get_method
    from photostyle.stages.common import limits, matching_settings, segmentation_on

    methods = [m for m in config["stylize"]["methods"] if get_method(m).scoped]
    s = {"report": dict(config["report"]), "ingest": limits(config), "scope": config["stylize"]["scope"],
         "params": {m: config["methods"][m] for m in methods}}
    if segmentation_on(config):
        s["segmentation"] = matching_settings(config)
    return s


def shoot_grid(style_id: str, folder: str, manifest, style_table, indexes: list[str], settings: dict, out,
               segment_indexes: list[str] = ()) -> int:
    """One folder of the collection (a shoot) before and after: per photo, the content, then for
    each colour-map method its result at scope photo (computed here, each photo fitted on its
    own) beside the pipeline's result at the configured scope (one map for the folder or the
    collection). Each panel's mean brightness is printed under it, so the order and spacing of
    exposures can be read off: photo scope pulls them together, folder scope keeps them."""
    _libs()
    import torch

    from photostyle.core.collection import folder_of
    from photostyle.core.tensors import to_tensor, to_uint8
    from photostyle.methods import get_method
    from photostyle.methods.base import StyleState
    from photostyle.ops.regions import RegionSource

    rep, scope = settings["report"], settings["scope"]
    limits = PhotoLimits.from_settings(settings)
    photos = sorted((r for r in read_csv_dicts(manifest) if r["kind"] == "content" and folder_of(r["relpath"]) == folder),
                    key=lambda r: r["relpath"])[:rep["grid_photos"]]
    style_row = next((r for r in read_csv_dicts(style_table) if r["status"] == "ok"), None)
    outputs = {(e["method"], e["photo_id"]): e for idx in indexes for e in read_csv_dicts(idx)
               if e["style"] == style_id and e["variant"] == "raw"}
    methods = list(settings["params"])
    seg = settings.get("segmentation")
    regions = RegionSource(seg, list(segment_indexes)) if seg and segment_indexes else None
    style_img = load_photo(style_row["path"], limits)[0] if style_row else None
    cols = ["before"] + [f"{m}\n{label}" for m in methods for label in ("scope photo", f"scope {scope}")]
    fig, axes = plt.subplots(max(1, len(photos)), len(cols), figsize=(2.1 * len(cols), 2.1 * max(1, len(photos)) + 0.5),
                             squeeze=False)
    for ax, title in zip(axes[0], cols):
        ax.set_title(title, fontsize=8)
    device = torch.device("cpu")

    def show(ax, img, label=""):
        if img is not None:
            ax.imshow(_thumb(img, rep["thumb_px"]))
            ax.set_xlabel(f"mean {img.mean() / 255:.2f}", fontsize=7)
        else:
            ax.text(0.5, 0.5, label or "—", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])

    for r, p in enumerate(photos):
        content = load_photo(p["path"], limits)[0]
        panels = [content]
        for m in methods:
            cls = get_method(m)
            own = None
            if style_img is not None:  # scope photo: the method fitted on this photo alone
                masks = regions.masks(p["id"], style_id, content, style_img, device) \
                    if regions is not None and cls.uses_regions else None
                st = StyleState(style_id, to_tensor(style_img, device))
                with torch.no_grad():
                    own = to_uint8(cls(cls.parse(settings["params"][m]), device)(to_tensor(content, device), st, masks))
            e = outputs.get((m, p["id"]))
            panels += [own, np.asarray(Image.open(e["output"]).convert("RGB")) if e and e["status"] == "ok" else None]
        for ax, img in zip(axes[r], panels):
            show(ax, img)
        axes[r][0].set_ylabel(Path(p["relpath"]).name, fontsize=7)
    if not photos:
        show(axes[0][0], None, "no photos")
    fig.suptitle(f"style {style_id} · folder {folder or '(top of the collection)'}: each photo fitted alone vs one map "
                 f"for the {scope}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return len(photos)
