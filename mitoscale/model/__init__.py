"""SAM models: official ViT-B/L/H and small CPU variants, safe checkpoints.

Everything is assembled from segment-anything's own modules
(``ImageEncoderViT``, ``PromptEncoder``, ``MaskDecoder``, ``TwoWayTransformer``);
the prompt encoder and mask decoder are always SAM's.
"""

from mitoscale.model.build import build_sam
from mitoscale.model.checkpoint import default_model_path, load_model, save_model
from mitoscale.model.preprocess import normalize_intensity, to_sam_input
from mitoscale.model.spec import MODEL_SPECS, ModelSpec, get_spec

__all__ = [
    "MODEL_SPECS",
    "ModelSpec",
    "get_spec",
    "build_sam",
    "load_model",
    "save_model",
    "default_model_path",
    "normalize_intensity",
    "to_sam_input",
]
