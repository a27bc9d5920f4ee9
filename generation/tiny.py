"""A tiny, randomly initialised Stable Diffusion pipeline with the real architecture, built offline.

Every component is a real diffusers/transformers class (UNet2DConditionModel, AutoencoderKL,
CLIPTextModel, CLIPTokenizer, DDIMScheduler) with small widths, saved in the diffusers folder layout
and loaded back through the same ``from_pretrained`` path as a downloaded model. The tokenizer is a
byte-level BPE learnt here from the evaluation prompts, so their words (and ``sks``) are single tokens.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

IMAGE_SIZE = 64
LATENT_SIZE = 8  # IMAGE_SIZE / VAE scale factor 8, as in Stable Diffusion
TEXT_WIDTH = 32
MAX_TOKENS = 77

# Words of the DreamBooth, base and complex prompt sets and the superclasses, plus the concept token.
_WORDS = """
a above accented among an and animal anime around as at autumn background backpack backyard ballerina
bathtub beach biscuit black blue blues boat boot bowl bubbles bustling butterflies by can candle cape
cartoon cartoonish castle cat charcoal chef chief city clock clouds cobblestone color cosmic cozy
creates cropped crowded cube detective digital dirt dog drawing dressed during dusk eiffel ethereal
evening exploring fabric field filled filtering firefighter floaing floating floor flowers foggy for
forest full furniture giant glasses glow grass grays green hat helmet house illuminated illustration
in it jungle kitchen landscape leaves lights living london magical midnight milk mirror monocle moon
moonlight mountain muted nearby neon next night nostalgic ocean of oil on one outfit painting palette
paris performing photo pink pirate police purple purples rainbow rainy red rendered rendering
rendition road robe room rug sand sandy santa scarf scattered seattle shaped shiny shirt showcasing
sidewalk silver sitting sketch skies sks small sneaker snow snowy soaring sofa soft space spacecraft
sparkling spotlight stage starry stars street stuffed sunflowers sunlight sunny sunset superhero
surrounded table teapot the through tokyo tones top tower toy tree using vase vintage warm water
watercolor wearing wet wheat where white window windowsill with wizard wooden yellow plushie sloth
wolf bear emoji poop robot monster duck car sunglasses sneakers vintage style
""".split()

_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2 / CLIP convention)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def learn_bpe(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn merges until every word is one token; return (vocab, merges) in CLIP's format."""
    alphabet = _byte_alphabet()
    vocab_tokens = alphabet + [c + "</w>" for c in alphabet]
    pieces = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in sorted(set(words))}
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(pair for seq in pieces.values() for pair in zip(seq, seq[1:]))
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda pair: pairs[pair])
        merges.append(best)
        vocab_tokens.append(best[0] + best[1])
        pieces = {w: _merge(seq, best) for w, seq in pieces.items()}
    vocab_tokens += [_BOS, _EOS]
    return {token: index for index, token in enumerate(dict.fromkeys(vocab_tokens))}, merges


def _merge(seq: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            out.append(seq[i] + seq[i + 1])
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return tuple(out)


def build_tokenizer():
    from transformers import CLIPTokenizer  # heavy import, only when a tokenizer is built

    vocab, merges = learn_bpe(_WORDS)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)


def build_components(seed: int = 0) -> dict:
    """Tiny real-architecture components, each seeded before construction (diffusers test style)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
        use_linear_projection=True,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS,
            projection_dim=TEXT_WIDTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def save_tiny_pipeline(directory: Path, seed: int = 0) -> None:
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline(
        **build_components(seed), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipeline.save_pretrained(directory, safe_serialization=True)
    (directory / "TINY_MODEL.json").write_text(
        json.dumps({"image_size": IMAGE_SIZE, "seed": seed, "note": "random weights"}, indent=2) + "\n"
    )


def ensure_tiny_model(directory: str | os.PathLike) -> Path:
    """Build the tiny pipeline at ``directory`` unless it is already there; return the folder.

    Safe when several processes call it at once: each builds in a private temporary folder next to the
    target and renames it into place; a process that loses the race discards its copy. If the folder
    already holds other things (the tiny CLIP and DINO models of ``make-tiny``), the components are
    moved in one by one and ``model_index.json``, the completion marker, last.
    """
    target = Path(directory)
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save_tiny_pipeline(staging)
        staging.chmod(0o755)  # mkdtemp makes it owner-only; the web server may run as another user
        if not target.exists() or not any(target.iterdir()):
            _rename_quietly(staging, target)
        else:
            for entry in sorted(staging.iterdir(), key=lambda p: p.name == "model_index.json"):
                if not (target / entry.name).exists():
                    _rename_quietly(entry, target / entry.name)
        if not (target / "model_index.json").is_file():
            raise OSError(f"tiny model {target}: expected model_index.json after building, found none")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _rename_quietly(source: Path, destination: Path) -> None:
    """Rename; losing a race to another process that created ``destination`` is not an error."""
    try:
        os.rename(source, destination)
    except OSError:
        if not destination.exists():
            raise
