"""Regenerate the shipped sample photos and style references from scikit-image's bundled data.

Run from the repository root: ``python data/make_sample_data.py``. Sources and licenses are
in data/README.md. Photos are downscaled (long side 320 px) so the sample run is quick.
"""

from pathlib import Path

import numpy as np
import skimage.data as skd
from PIL import Image

ROOT = Path(__file__).resolve().parent
LONG_SIDE = 320


def small(arr: np.ndarray) -> Image.Image:
    im = Image.fromarray(arr).convert("RGB")
    im.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
    return im


def grade(im: Image.Image, gain, lift, gamma=1.0, saturation=1.0) -> Image.Image:
    """A simple colour grade: per-channel gain and lift, gamma, saturation."""
    x = np.asarray(im).astype(np.float64) / 255.0
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * saturation
    x = np.clip(x * np.asarray(gain) + np.asarray(lift), 0, 1) ** gamma
    return Image.fromarray((x * 255).round().astype(np.uint8))


def exposed(im: Image.Image, ev: float) -> Image.Image:
    """The photo ``ev`` stops brighter (negative: darker): light scaled by 2**ev in linear sRGB."""
    x = np.asarray(im).astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * 2.0 ** ev
    lin = np.clip(lin, 0, 1)
    enc = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return Image.fromarray((enc * 255).round().astype(np.uint8))


def main() -> None:
    content = ROOT / "content"
    styles = ROOT / "styles"
    content.mkdir(exist_ok=True)
    styles.mkdir(exist_ok=True)
    photos = {
        "astronaut": skd.astronaut(),
        "coffee": skd.coffee(),
        "chelsea": skd.chelsea(),
        "rocket": skd.rocket(),
        "hubble_deep_field": skd.hubble_deep_field(),
    }
    for name, arr in photos.items():
        small(arr).save(content / f"{name}.jpg", quality=90)
    # a sixth content photo: a crop of the rocket launch (sky and smoke)
    small(skd.rocket()[:, 100:400]).save(content / "rocket_sky_crop.jpg", quality=90)

    # a shoot: one scene bracketed at -1, 0 and +1 EV (README "Grading a shoot": folder scope
    # keeps the frames apart, photo scope pulls them to one brightness)
    (content / "shoot").mkdir(exist_ok=True)
    for name, ev in (("coffee_minus1ev", -1.0), ("coffee_0ev", 0.0), ("coffee_plus1ev", 1.0)):
        exposed(small(skd.coffee()), ev).save(content / "shoot" / f"{name}.jpg", quality=90)

    grade(small(skd.rocket()), gain=(1.15, 0.95, 0.70), lift=(0.06, 0.03, 0.0), gamma=0.9,
          saturation=1.2).save(styles / "golden_hour.jpg", quality=92)
    grade(small(skd.coffee()), gain=(0.75, 0.95, 1.2), lift=(0.0, 0.04, 0.10), gamma=1.1,
          saturation=0.8).save(styles / "blue_hour.jpg", quality=92)
    grade(small(skd.chelsea()), gain=(0.9, 0.85, 0.8), lift=(0.12, 0.10, 0.08), gamma=1.0,
          saturation=0.45).save(styles / "faded_film.jpg", quality=92)


if __name__ == "__main__":
    main()
