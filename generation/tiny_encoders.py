"""Tiny, randomly initialised CLIP and DINOv2 models for offline tests and demos.

Each model is a real transformers architecture with a small config, saved with
``save_pretrained`` together with its tokenizer and image-processor config, so it
loads through exactly the same ``from_pretrained`` path as the hub models
``openai/clip-vit-base-patch32`` and ``facebook/dinov2-small``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

SEED = 0

# Words of the DreamBooth prompt sets, superclasses and the concept token; each gets
# its own single BPE token so prompts tokenise into whole words.
PROMPT_WORDS = """
a above accented accessories after among an and animal anime around as at autumn background
backpack backyard ballerina base bathtub beach bear berry biscuit black blue blues boat boot bowl
bubbles bustling butterflies by can candle cape car cartoon cartoonish castle cat charcoal chef chief
city clock clouds cobblestone color colorful cosmic cozy creates cropped crowded cube detective
digital dirt dog drawing dressed duck during dusk eiffel emoji ethereal evening exploring fabric
fancy field filled filtering firefighter floaing floating floor flowers foggy forest full furniture
giant glasses glow grass grays green grey hat helmet house illuminated illustration in it jungle
kitchen landscape leaves lights living london magical midnight milk mirror monocle monster moon
moonlight mountain muted nearby neon next night nostalgic ocean of oil on one outfit painting palette
paris performing photo pink pirate plushie police poop purple purples rainbow rainy rc red rendered
rendering rendition road robe robot room rug s sand sandy santa scarf scattered seattle shaped shiny
shirt showcasing sidewalk silver sitting sketch skies sks sloth sneaker snow snowy soaring sofa soft
space spacecraft sparkling spotlight stage starry stars street stuffed sunflowers sunglasses sunlight
sunny sunset superhero surrounded table teapot the through tokyo tones top tower toy tree using vase
vintage warm water watercolor wearing wet wheat where white window windowsill with wizard wolf wooden
yellow
""".split()

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
WORD_END = "</w>"

CLIP_PREPROCESSING = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
}

DINO_PREPROCESSING = {
    "image_processor_type": "BitImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 64},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 56, "width": 56},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "do_convert_rgb": True,
}


def save_tiny_clip(directory: str | os.PathLike) -> Path:
    """Write a tiny CLIPModel, its tokenizer and preprocessing config to ``directory/clip``."""
    return _save_once(Path(directory) / "clip", "clip", _write_clip)


def save_tiny_dino(directory: str | os.PathLike) -> Path:
    """Write a tiny Dinov2Model and its preprocessing config to ``directory/dino``."""
    return _save_once(Path(directory) / "dino", "dinov2", _write_dino)


def _save_once(target: Path, model_type: str, write) -> Path:
    """Build into a temporary sibling folder, then rename it into place (safe across processes)."""
    if _is_complete(target, model_type):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        staging.chmod(0o755)
        try:
            os.rename(staging, target)
        except OSError:
            if not _is_complete(target, model_type):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _is_complete(folder: Path, model_type: str) -> bool:
    config = folder / "config.json"
    if not (config.is_file() and (folder / "preprocessor_config.json").is_file()):
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == model_type
    except ValueError:
        return False


def _write_clip(folder: Path) -> None:
    import torch
    from transformers import CLIPConfig, CLIPModel

    tokenizer = build_clip_tokenizer()
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": CLIP_PREPROCESSING["crop_size"]["height"],
        "patch_size": 8,
    }
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _write_preprocessing(folder, CLIP_PREPROCESSING)


def _write_dino(folder: Path) -> None:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=DINO_PREPROCESSING["crop_size"]["height"],
        patch_size=14,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Dinov2Model(config).eval()
    model.save_pretrained(folder)
    _write_preprocessing(folder, DINO_PREPROCESSING)


def _write_preprocessing(folder: Path, settings: dict) -> None:
    (folder / "preprocessor_config.json").write_text(json.dumps(settings, indent=2) + "\n")


def build_clip_tokenizer(words: list[str] = PROMPT_WORDS):
    """A byte-level BPE CLIPTokenizer built locally, with one token per word in ``words``."""
    from transformers import CLIPTokenizer

    vocab, merges = _bpe_vocab_and_merges(words)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _bpe_vocab_and_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    byte_symbols = list(_bytes_to_unicode().values())
    vocab_list = byte_symbols + [symbol + WORD_END for symbol in byte_symbols]
    merges: list[tuple[str, str]] = []
    merge_ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(words):
        pieces = _apply_merges(_word_symbols(word), merge_ranks)
        # Chain the word's remaining pieces left to right; appended merges rank after all
        # existing ones, so earlier words keep their single-token spelling.
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merge_ranks:
                merge_ranks[pair] = len(merges)
                merges.append(pair)
                vocab_list.append(pair[0] + pair[1])
            pieces = [pair[0] + pair[1]] + pieces[2:]
    vocab_list += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocab_list))}
    return vocab, merges


def _word_symbols(word: str) -> list[str]:
    table = _bytes_to_unicode()
    symbols = [table[byte] for byte in word.encode("utf-8")]
    symbols[-1] += WORD_END
    return symbols


def _apply_merges(pieces: list[str], merge_ranks: dict[tuple[str, str], int]) -> list[str]:
    while len(pieces) > 1:
        ranked = [(merge_ranks.get(pair, len(merge_ranks) + 1), i) for i, pair in enumerate(zip(pieces, pieces[1:]))]
        rank, index = min(ranked)
        if rank > len(merge_ranks):
            break
        pieces = pieces[:index] + [pieces[index] + pieces[index + 1]] + pieces[index + 2 :]
    return pieces


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-to-printable-character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))
