"""Ground-truth-free measures (mitoscale.evaluate.proxies), the method overlays
(mitoscale.evaluate.overlay) and benchmarks/real_fragmentation.py, checked against
independent calculations on hand-made images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mitoscale.evaluate.overlay import choose_crop, table_layers, write_method_overlays
from mitoscale.evaluate.proxies import proxy_metrics, reference_foreground, skeleton_length_um
from mitoscale.io.tables import instances_to_table

PX = 0.08
ROOT = Path(__file__).resolve().parents[2]


def bars_image(shape=(96, 128)):
    """Three 5 px wide, 60 px long horizontal bars (intensity 100) on a dark background."""
    im = np.full(shape, 10.0, dtype=np.float32)
    for r in (15, 45, 75):
        im[r:r + 5, 20:80] = 100.0
    return im


def otsu_brute(values):
    """Otsu's threshold by exhaustive search of the between-class variance (no skimage)."""
    v = np.sort(values.ravel())
    cands = np.unique(v)[:-1]
    best, t_best = -1.0, None
    for t in cands[:: max(1, len(cands) // 2000)]:
        lo, hi = v[v <= t], v[v > t]
        w0, w1 = lo.size / v.size, hi.size / v.size
        var = w0 * w1 * (lo.mean() - hi.mean()) ** 2
        if var > best:
            best, t_best = var, t
    return t_best


def path_length_um(mask):
    """Skeleton length of a mask whose skeleton is a simple path, by hand: the 8-neighbour steps
    (1 or sqrt 2 px) plus, at both ends, the end pixel's distance to the mask edge (EDT - 1/2)."""
    from scipy import ndimage as ndi
    from skimage.morphology import skeletonize

    s = np.pad(skeletonize(mask), 1)
    deg = sum(np.roll(np.roll(s, dy, 0), dx, 1).astype(int) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
              if (dy, dx) != (0, 0)) * s
    assert deg.max() <= 2 and (deg == 1).sum() == 2, "test precondition: a simple open path"
    right = (s[:, :-1] & s[:, 1:]).sum()
    down = (s[:-1] & s[1:]).sum()
    diag = (s[:-1, :-1] & s[1:, 1:]).sum() + (s[:-1, 1:] & s[1:, :-1]).sum()
    ends = (ndi.distance_transform_edt(np.pad(mask, 1))[deg == 1] - 0.5).sum()
    return PX * (right + down + np.sqrt(2) * diag + ends)


def table_of(crops_and_offsets, shape):
    crops, offsets = zip(*crops_and_offsets)
    return instances_to_table(list(crops), offsets=list(offsets), shape=shape, image_id="img", pixel_size_um=PX)


def components(fg):
    from scipy import ndimage as ndi

    lab, n = ndi.label(fg, structure=np.ones((3, 3)))
    return [(lab[s] == i + 1, (s[0].start, s[1].start)) for i, s in enumerate(ndi.find_objects(lab))]


def test_reference_foreground_is_otsu_on_the_smoothed_image():
    from scipy import ndimage as ndi

    im = bars_image() + np.random.default_rng(0).normal(0, 3, (96, 128)).astype(np.float32)
    smooth = ndi.gaussian_filter(im.astype(np.float64), 0.1 / PX, mode="nearest", truncate=4.0)
    expected = smooth > otsu_brute(smooth)
    got = reference_foreground(im, PX, 0.1)
    assert (got != expected).sum() <= 3  # threshold candidates are subsampled in the brute force
    assert got[17, 50] and not got[0, 0]
    assert not reference_foreground(np.ones((8, 8)), PX).any()  # flat image: no foreground


def test_background_variant_drops_diffuse_haze():
    """A broad haze brighter than the dim bars: Otsu takes the haze; minus a 2 µm Gaussian, the bars."""
    yy, xx = np.mgrid[:96, :128]
    haze = 120.0 * np.exp(-((yy - 48) ** 2 + (xx - 110) ** 2) / (2 * 60.0 ** 2))  # σ 4.8 µm
    im = haze + bars_image() * 0.5
    plain = reference_foreground(im, PX)
    assert plain[48, 110] and plain[30, 100]  # haze, off every bar
    sub = reference_foreground(im, PX, background_um=2.0)
    assert not sub[48, 110] and not sub[30, 100]
    assert sub[17, 30] and sub[47, 30] and sub[77, 30] and sub[47, 75]  # every bar, also on the haze


def test_metrics_against_hand_computed_values():
    im = bars_image()
    fg = reference_foreground(im, PX)
    comps = components(fg)
    assert len(comps) == 3
    fg_len = sum(path_length_um(m) for m, _ in comps)
    assert skeleton_length_um(fg, PX) == pytest.approx(fg_len, rel=1e-9)

    # whole: one instance per bar
    whole = proxy_metrics(table_of(comps, fg.shape), fg, PX)
    lengths = [path_length_um(m) for m, _ in comps]
    assert 0.9 * 60 * PX < min(lengths) and max(lengths) < 1.1 * 62 * PX  # about the bars' length
    assert whole["n_instances"] == 3
    assert whole["instances_per_10um"] == pytest.approx(30 / fg_len)
    assert whole["median_skeleton_um"] == pytest.approx(np.median(lengths))
    assert whole["coverage"] == 1.0 and whole["outside"] == 0.0
    assert whole["dot_share_count"] == 0.0  # each bar > 1.28 µm² (> 200 px at 80 nm)

    # cut: every bar in three pieces along x -> 3x the instances, shorter pieces
    pieces = []
    for m, (oy, ox) in comps:
        edges = np.linspace(0, m.shape[1], 4).astype(int)
        pieces += [(m[:, a:b], (oy, ox + a)) for a, b in zip(edges[:-1], edges[1:])]
    cut = proxy_metrics(table_of(pieces, fg.shape), fg, PX)
    assert cut["n_instances"] == 9 and cut["coverage"] == 1.0
    assert cut["instances_per_10um"] == pytest.approx(3 * whole["instances_per_10um"])
    piece_len = [path_length_um(m) for m, _ in pieces]
    assert cut["median_skeleton_um"] == pytest.approx(np.median(piece_len))
    assert cut["median_skeleton_um"] < whole["median_skeleton_um"] / 2

    # spill: one bar, the same bar again (overlap counts once) and a 10 x 10 square on background
    square = (np.ones((10, 10), bool), (84, 100))
    spill = proxy_metrics(table_of([comps[0], comps[0], square], fg.shape), fg, PX)
    n0 = int(comps[0][0].sum())
    assert spill["coverage"] == pytest.approx(n0 / fg.sum())
    assert spill["outside"] == pytest.approx(100 / (n0 + 100))
    # dot rule: the square (100 px = 0.64 µm²) is a dot, the bars are rods
    assert spill["dot_share_count"] == pytest.approx(1 / 3)
    assert spill["dot_share_area"] == pytest.approx(100 / (2 * n0 + 100))


def test_table_layers_keep_every_instance_and_clip_to_the_window():
    a = np.zeros((20, 20), bool)
    a[2:10, 2:10] = True
    b = np.zeros((20, 20), bool)
    b[5:15, 5:15] = True  # overlaps a
    c = np.zeros((20, 20), bool)
    c[16:19, 1:4] = True
    table = instances_to_table([a, b, c], image_id="i", pixel_size_um=PX)
    layers = table_layers(table, (20, 20))
    assert layers.shape[0] == 2  # a and c share a layer, b (overlapping a) gets its own
    for k, m in enumerate((a, b, c)):
        np.testing.assert_array_equal((layers == k + 1).any(0), m)
    win = table_layers(table, (10, 10), origin=(8, 8))
    np.testing.assert_array_equal((win == 2).any(0), b[8:18, 8:18])
    assert not (win == 3).any()  # c lies outside the window


def test_choose_crop_and_overlay_png(tmp_path):
    import imageio.v3 as iio

    w = np.zeros((100, 120))
    w[60:80, 70:90] = 1
    oy, ox = choose_crop(w, 32, step=4)
    assert w[oy:oy + 32, ox:ox + 32].sum() == 400
    im = bars_image()
    fg = reference_foreground(im, PX)
    tables = {"whole": table_of(components(fg), fg.shape), "empty": table_of(components(fg)[:1], fg.shape)}
    png = write_method_overlays(im, tables, tmp_path / "o.png", pixel_size_um=PX, crop=64, weight=fg,
                                foreground=fg, title="bars")
    rgb = iio.imread(png)
    # field, crop, foreground, 2 methods: 3 columns x 2 rows of 64 px panels plus titles and gaps
    assert rgb.shape[1] == 3 * (64 + 8) + 8 and rgb.shape[0] == 2 * (64 + 24 + 8) + 8
    assert (np.ptp(rgb[..., :3].astype(int), axis=-1) > 100).any()  # coloured outlines drawn


def _script():
    spec = importlib.util.spec_from_file_location("real_fragmentation", ROOT / "benchmarks" / "real_fragmentation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_real_fragmentation_script_end_to_end(tmp_path, capsys):
    """Classical and the shipped model on two tiny hand-made images, one per dataset."""
    import imageio.v3 as iio

    im = bars_image()
    for folder, name in (("mcc13", "bars_a.png"), ("h9c2_case_study", "hypoxia_m001_z02.png")):
        (tmp_path / "data" / folder).mkdir(parents=True)
        iio.imwrite(tmp_path / "data" / folder / name, (im * 2).astype(np.uint8))
    md = tmp_path / "BENCH.md"
    md.write_text("# bench\n")
    rc = _script().main(["--data", str(tmp_path / "data"), "--baselines", "classical", "--model", "m=shipped",
                         "--out", str(tmp_path / "out"), "--overlays", str(tmp_path / "img"),
                         "--overlay-crop", "64", "--update", str(md)])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["datasets"]) == {"mcc13", "h9c2"}
    fg = reference_foreground((im * 2).astype(np.uint8), PX)
    fg_len = sum(path_length_um(m) for m, _ in components(fg))
    for entry in res["images"]:
        cl = entry["methods"]["classical"]
        assert entry["foreground_skeleton_um"] == pytest.approx(fg_len)
        assert cl["n_instances"] == 3  # one per bar
        assert cl["instances_per_10um"] == pytest.approx(30 / fg_len)
        assert cl["coverage"] > 0.6 and cl["outside"] < 0.1
        assert entry["methods"]["m"]["seconds"] > 0
    assert set(res["targets"]["h9c2"]["m"]) == {"coverage>=0.6 and outside<=0.10"}  # no Nellie: one target
    assert (tmp_path / "img" / "realfrag_hypoxia_m001_z02.png").exists()
    assert not (tmp_path / "img" / "realfrag_bars_a.png").exists()
    text = md.read_text()
    assert "<!-- real_fragmentation:begin -->" in text and "| h9c2 " in text


@pytest.mark.parametrize("argv, message", [
    (["--data", "/nonexistent"], "no images"),
    (["--model", "nolabel"], "LABEL=PATH"),
    (["--model", "x=git:0000000"], "git show"),
    (["--model", "x=/no/such.safetensors"], "not found"),
    (["--model", "a=shipped", "--model", "a=shipped"], "used twice"),
    (["--model", "nellie=shipped"], "used twice or a baseline"),
])
def test_real_fragmentation_bad_input_is_one_line(tmp_path, capsys, argv, message):
    if "--data" not in argv:
        argv = argv + ["--data", str(tmp_path)]  # empty: model errors must come first
    rc = _script().main(argv + ["--baselines", "", "--out", str(tmp_path), "--overlays", ""])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0]


def test_model_from_a_git_revision_loads(tmp_path):
    """``LABEL=git:REV`` extracts the shipped weights and their JSON as committed, loadable."""
    import subprocess

    from mitoscale.model import load_model

    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    label, path, desc = _script().resolve_model("old=git:HEAD", tmp_path)
    assert label == "old" and desc.endswith("at HEAD")
    committed = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:mitoscale/weights/mitoscale-small.json"],
                               capture_output=True, check=True).stdout
    assert Path(path).with_suffix(".json").read_bytes() == committed
    _, spec, _ = load_model(path)
    assert spec.name
