"""Architecture specifications, chosen by name in configs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mitoscale.errors import ConfigError

__all__ = ["ModelSpec", "MODEL_SPECS", "get_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters of a SAM-architecture model.

    ``img_size / patch_size`` is the image-embedding grid; the mask decoder
    predicts masks at 4x that grid.
    """

    name: str
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_mlp_dim: int = 2048
    official: bool = False
    notes: str = field(default="", compare=False)

    @property
    def embedding_size(self) -> int:
        return self.img_size // self.patch_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoder_global_attn_indexes"] = list(self.encoder_global_attn_indexes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        d["encoder_global_attn_indexes"] = tuple(d["encoder_global_attn_indexes"])
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"model config has unknown keys: {sorted(unknown)}")
        return cls(**d)


MODEL_SPECS: dict[str, ModelSpec] = {
    "vit_b": ModelSpec("vit_b", 768, 12, 12, (2, 5, 8, 11), official=True),
    "vit_l": ModelSpec("vit_l", 1024, 24, 16, (5, 11, 17, 23), official=True),
    "vit_h": ModelSpec("vit_h", 1280, 32, 16, (7, 15, 23, 31), official=True),
    # Small CPU variants: SAM's prompt encoder and mask decoder, a narrow and
    # shallow ViT encoder, 512 px input (one 80 nm tile = 40.96 µm).
    "tiny": ModelSpec("tiny", 128, 4, 4, (1, 3), img_size=512, patch_size=8, window_size=8,
                      notes="4 blocks x 128 wide, patch 8: 64x64 embedding, 256x256 masks"),
    "small": ModelSpec("small", 256, 6, 8, (2, 5), img_size=512, patch_size=8, window_size=8,
                       notes="6 blocks x 256 wide, patch 8"),
    "vit_b_512": ModelSpec("vit_b_512", 768, 12, 12, (2, 5, 8, 11), img_size=512,
                           notes="vit_b at 512 px input (encoder-cache benchmarks)"),
    # The shipped CPU model (mitoscale/weights/mitoscale-small): 256 px tiles
    # (20.5 um at 80 nm), patch 8 -> 32x32 embedding, 128x128 low-res masks
    # (2 px per mask pixel for 2.5-6 px wide mitochondria).  Global attention
    # over 1024 tokens is cheap, unlike over 4096 at 512 px (measured in
    # benchmarks/RESULTS_train.md): ~0.04 s per tile forward on 2 cores.
    "mito256": ModelSpec("mito256", 128, 4, 4, (1, 3), img_size=256, patch_size=8, window_size=8,
                         notes="shipped CPU model: 4 blocks x 128, 256 px input, patch 8"),
    # Test-sized model: seconds per step, for unit tests and smoke runs only.
    "micro": ModelSpec("micro", 32, 1, 2, (0,), img_size=128, patch_size=8, window_size=8,
                       decoder_mlp_dim=256, notes="test-only: 1 block x 32, 128 px input"),
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODEL_SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown model variant {name!r}; choose from {sorted(MODEL_SPECS)}") from None
