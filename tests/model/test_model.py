"""Model specs, safe checkpoints and the prompted/windowed decoder."""

import json

import numpy as np
import pytest
import torch

from mitoscale.errors import ConfigError, ModelError
from mitoscale.model import (MODEL_SPECS, build_sam, get_spec, load_model, normalize_intensity,
                             save_model, to_sam_input)
from mitoscale.train.module import PromptedSam, crop_windows


def test_specs_build_with_sam_modules():
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam

    sam = build_sam("micro")
    assert isinstance(sam, Sam)
    assert isinstance(sam.mask_decoder, MaskDecoder) and isinstance(sam.prompt_encoder, PromptEncoder)
    spec = get_spec("mito256")
    assert spec.embedding_size == 32
    with pytest.raises(ConfigError, match="unknown model variant"):
        get_spec("vit_q")
    for name in ("vit_b", "vit_l", "vit_h"):
        assert MODEL_SPECS[name].official and MODEL_SPECS[name].img_size == 1024


def test_official_architecture_matches_segment_anything_registry():
    from segment_anything import sam_model_registry

    ref = sam_model_registry["vit_b"]()  # random init, no checkpoint
    ours = build_sam("vit_b")
    a = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert a == b


def test_safetensors_roundtrip_and_errors(tmp_path):
    torch.manual_seed(0)
    sam = build_sam("micro")
    path = save_model(tmp_path / "m.safetensors", sam, get_spec("micro"), meta={"note": "x"})
    model, spec, meta = load_model(path)
    assert spec.name == "micro" and meta == {"note": "x"}
    for k, v in sam.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(ModelError, match="asks for"):
        load_model(path, variant="mito256")
    # wrong keys: a micro checkpoint relabelled as another architecture
    info = json.loads(path.with_suffix(".json").read_text())
    info["spec"] = get_spec("mito256").to_dict()
    path.with_suffix(".json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="does not belong to these weights"):
        load_model(path)


def test_official_pth_loaded_with_weights_only(tmp_path):
    sam = build_sam("micro")
    pth = tmp_path / "sam_micro.pth"
    torch.save(sam.state_dict(), pth)
    model, spec, meta = load_model(pth, variant="micro")
    assert meta["source"] == "official"
    with pytest.raises(ModelError, match="needs the model variant"):
        load_model(pth)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(ModelError, match="weights_only"):
        load_model(bad, variant="micro")


def test_preprocess_pads_and_normalises():
    img = np.arange(100 * 80, dtype=np.uint16).reshape(100, 80)
    norm = normalize_intensity(img)
    assert norm.min() == 0.0 and norm.max() == 1.0
    x = to_sam_input(norm, 128)
    assert x.shape == (3, 128, 128)
    assert torch.all(x[:, 100:, :] == 0) and torch.all(x[:, :, 80:] == 0)


@torch.no_grad()
def test_full_map_decode_equals_sam_decoder():
    torch.manual_seed(1)
    sam = build_sam("micro")
    model = PromptedSam(sam, window=None)
    emb = torch.randn(1, 256, 16, 16)
    pts = torch.tensor([[10.0, 20.0], [100.0, 64.0]])
    logits, iou, origin = model.decode(emb, pts)
    sparse, dense = sam.prompt_encoder(points=(pts[:, None], torch.ones(2, 1, dtype=torch.long)),
                                       boxes=None, masks=None)
    ref_logits, ref_iou = sam.mask_decoder(emb, sam.prompt_encoder.get_dense_pe(), sparse, dense,
                                           multimask_output=True)
    assert torch.allclose(logits, ref_logits, atol=1e-5) and torch.allclose(iou, ref_iou, atol=1e-5)
    assert (origin == 0).all()


@torch.no_grad()
def test_windowed_decode_uses_matching_positional_slice():
    torch.manual_seed(2)
    sam = build_sam("micro")
    emb = torch.randn(1, 256, 16, 16)
    pts = torch.tensor([[5.0, 5.0], [120.0, 60.0]])
    logits, iou, origin = PromptedSam(sam, window=8).decode(emb, pts)
    assert logits.shape == (2, 3, 32, 32)  # 4x an 8-cell window
    # point (x=120, y=60) -> cell (y=7, x=15) -> window clipped to start (3, 8)
    assert origin.tolist() == [[0, 0], [3 * 8, 8 * 8]]
    # equals SAM's own decoder run on the window and the same slice of the PE
    win = crop_windows(emb.expand(2, -1, -1, -1), origin // 8, 8)
    pe = crop_windows(sam.prompt_encoder.get_dense_pe().expand(2, -1, -1, -1), origin // 8, 8)
    sparse, _ = sam.prompt_encoder(points=(pts[:, None], torch.ones(2, 1, dtype=torch.long)),
                                   boxes=None, masks=None)
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(2, -1, 8, 8)
    for i in range(2):
        ref, ref_iou = sam.mask_decoder(win[i:i + 1], pe[i:i + 1], sparse[i:i + 1], dense[i:i + 1],
                                        multimask_output=True)
        assert torch.allclose(logits[i:i + 1], ref, atol=1e-5)
        assert torch.allclose(iou[i:i + 1], ref_iou, atol=1e-5)


def test_export_float16_roundtrip_and_default_model(tmp_path):
    from mitoscale.model import default_model_path
    from mitoscale.train.export import export_model

    torch.manual_seed(3)
    sam = build_sam("micro")
    src = save_model(tmp_path / "src.safetensors", sam, get_spec("micro"), meta={"steps": 7})
    dst = export_model(src, tmp_path / "ship.safetensors", dtype="float16", meta={"note": "ok"})
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    model, spec, meta = load_model(dst, variant="micro")
    assert meta["steps"] == 7 and meta["note"] == "ok" and meta["dtype"] == "float16"
    for k, v in sam.state_dict().items():
        w = model.state_dict()[k]
        assert w.dtype == v.dtype
        torch.testing.assert_close(w, v, rtol=1e-3, atol=1e-4)
    # the shipped default model loads (what `mitoscale segment` uses without --model)
    assert default_model_path().name == "mitoscale-small.safetensors"
    if default_model_path().exists():
        model, spec, meta = load_model(None)
        assert spec.name == "mito256"
        assert default_model_path().stat().st_size <= 25e6
