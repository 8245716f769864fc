"""Side-by-side crops: real MCC13 and H9c2 fields beside the broad and paper presets.

    python benchmarks/domain_montage.py --out docs/images/simulate_domains.png

Each row is one source; every crop is 256 x 256 px at 80 nm (20.5 µm),
percentile-stretched the same way (0.5-99.8 %, as the model normalises a
frame).  Synthetic crops show their ground-truth outlines in a second
panel.  Reads ``../shared/data`` (``--data``); simulates its synthetic images
in-process (a few seconds each).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mitoscale.model import normalize_intensity

REPO = Path(__file__).resolve().parents[1]


def _crop(img, y, x, n=256):
    return img[y: y + n, x: x + n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "docs" / "images" / "simulate_domains.png"))
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)

    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from mitoscale.simulate import simulate_image
    from mitoscale.simulate.config import load_simulate_config

    data = Path(args.data)
    real = [
        ("MCC13 conv013_z7", iio.imread(data / "mcc13" / "mcc13_conv013_z7.png"), [(480, 60), (560, 460), (140, 640)]),
        ("MCC13 convtl005_z12", iio.imread(data / "mcc13" / "mcc13_convtl005_z12.png"), [(380, 380), (600, 200), (200, 560)]),
        ("H9c2 normoxia m025_z04", iio.imread(data / "h9c2_case_study" / "normoxia_m025_z04.png"), [(300, 300), (560, 560), (100, 200)]),
        ("H9c2 hypoxia m001_z02", iio.imread(data / "h9c2_case_study" / "hypoxia_m001_z02.png"), [(300, 300), (560, 560), (400, 100)]),
    ]
    rows = []
    for name, img, spots in real:
        img = img if img.ndim == 2 else img[..., 0]
        rows.append((name, [normalize_intensity(_crop(img, y, x)) for y, x in spots], None))
    for preset, idx in (("broad", (0, 1, 2)), ("paper", (0, 1, 2))):
        cfg = load_simulate_config(None, preset=preset)
        crops, outlines = [], []
        for i in idx:
            s = simulate_image(cfg, args.seed, i)
            crops.append(normalize_intensity(_crop(s.image, 128, 128)))
            edge = np.zeros((256, 256), bool)
            for layer in s.labels:
                edge |= find_boundaries(_crop(layer, 128, 128), mode="inner")
            outlines.append(edge)
        rows.append((f"{preset} preset", crops, outlines))

    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3.1 * len(rows)))
    for r, (name, crops, outlines) in enumerate(rows):
        for c in range(3):
            ax = axes[r, c]
            ax.imshow(crops[c], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=10)
        ax = axes[r, 3]
        if outlines is not None:
            rgb = np.dstack([crops[0]] * 3)
            rgb[outlines[0]] = (1.0, 0.2, 0.8)
            ax.imshow(rgb)
            ax.set_title("truth outlines (first crop)", fontsize=8)
        else:
            ax.axis("off")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("256 px crops at 80 nm (20.5 µm): real images (top) and the two simulator presets", fontsize=11)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
