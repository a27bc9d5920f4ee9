"""Loading a Stable Diffusion 1.x/2.x, SD-XL or PixArt-alpha pipeline plus personalization weights, cached.

A base model is a hub id or a local folder in the diffusers layout; its backbone is the pipeline class
named in ``model_index.json`` (``identify_backbone``). A personalization is a file or folder in one of
these formats (detected from its file names; ``BACKBONE_FORMATS`` says which each backbone takes):

* ``full``: a fine-tuned pipeline folder (``model_index.json``) or component folders
  (``unet/``, ``text_encoder/``, optionally ``tokenizer/``), DreamBooth style;
* ``state_dict``: ``unet.bin`` / ``text_encoder.bin`` (or ``.safetensors``) full state dicts;
* ``svdiff``: the same file names holding only ``<module>.delta`` spectral shifts, fused once at load
  (W' = U diag(ReLU(S + delta)) V^T);
* ``lora``: ``pytorch_lora_weights.safetensors`` (diffusers loaders + peft), fused at load;
* ``textual_inversion``: ``learned_embeds.safetensors`` / ``learned_embeds.bin`` or ``<token>.bin``;
* ``custom_diffusion``: ``pytorch_custom_diffusion_weights.bin`` (diffusers format) plus optional
  ``<token>.bin`` embeddings. The trained attention projections are fused into the UNet's own
  ``to_q/to_k/to_v/to_out`` so every sampler, Photoswap and Masked included, runs with them.

Nothing is cached unless it loaded completely.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from generation.backbones import (
    BACKBONE_NAMES,
    PIPELINE_CLASSES,
    PIXART_ALPHA,
    SD,
    SDXL,
    backbone_for_class,
    backbone_of,
)
from generation.errors import ModelLoadError
from generation.speed import clear_graphs, compile_denoiser

_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
LORA_NAMES = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")
CUSTOM_DIFFUSION_NAMES = ("pytorch_custom_diffusion_weights.safetensors", "pytorch_custom_diffusion_weights.bin")
TEXTUAL_INVERSION_NAMES = ("learned_embeds.safetensors", "learned_embeds.bin")
STATE_DICT_STEMS = ("unet", "text_encoder")
FULL_COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2")
# The personalization formats each backbone takes; the others are refused by name before anything loads.
BACKBONE_FORMATS = {
    SD: ("full", "state_dict", "svdiff", "lora", "textual_inversion", "custom_diffusion"),
    SDXL: ("full", "state_dict", "svdiff", "lora", "custom_diffusion"),
    PIXART_ALPHA: ("full",),
}
EXPECTED_LAYOUTS = (
    "model_index.json or unet/ + text_encoder/ (full fine-tuned components), "
    "unet.bin / text_encoder.bin (state dicts or SVDiff *.delta shifts), "
    "pytorch_lora_weights.safetensors (LoRA), learned_embeds.safetensors or <token>.bin (Textual Inversion), "
    "pytorch_custom_diffusion_weights.bin (Custom Diffusion)"
)


def resolve_device(device: str | None = None) -> str:
    """``None``/"auto" -> "cuda" when available, else "cpu"."""
    import torch  # heavy import (~1 s), only when a model is about to be used

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", str(device)):
        raise ModelLoadError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r}: CUDA is not available on this machine")
    return str(device)


def resolve_dtype(dtype: Any, device: str):
    """fp32 on CPU; fp16 on GPU unless bf16/fp32 is asked for."""
    import torch

    if dtype is None:
        return torch.float32 if device == "cpu" else torch.float16
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name not in ("float32", "float16", "bfloat16"):
        raise ModelLoadError(f"dtype: expected float32, float16 or bfloat16, got {dtype!r}")
    if device == "cpu" and name == "float16":
        raise ModelLoadError("dtype float16 on cpu: expected float32 or bfloat16 (CPU kernels lack float16)")
    return getattr(torch, name)


def load_pipeline(
    model: str | os.PathLike,
    personalization: str | os.PathLike | None = None,
    dtype=None,
    device=None,
    compile: bool = False,
    compile_cache_dir: str | os.PathLike | None = None,
):
    """Return the model's diffusers pipeline (DDIM scheduler) with the personalization applied, cached.

    The cache key is (base, personalization, dtype, device, compile); a worker therefore loads each
    model once. ``compile`` compiles the denoiser in place (``generation.speed.compile_denoiser``).
    """
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    personalization_key = str(Path(personalization).expanduser().resolve()) if personalization else None
    key = (_model_key(model), personalization_key, str(torch_dtype), device, bool(compile))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        pipeline = _load_base(model)
        if personalization:
            apply_personalization(pipeline, Path(personalization).expanduser())
        if torch_dtype == backbone_of(pipeline).denoiser.dtype:
            pipeline.to(device=device)
        else:
            pipeline.to(device=device, dtype=torch_dtype)
        pipeline.set_progress_bar_config(disable=True)
        if compile:
            compile_denoiser(backbone_of(pipeline).denoiser, compile_cache_dir)
        _CACHE[key] = pipeline
        return pipeline


def clear_cache() -> None:
    """Drop every cached pipeline and return GPU memory to the driver."""
    with _LOCK:
        _CACHE.clear()
        clear_graphs()
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _model_key(model: str | os.PathLike) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def _listing(path: Path) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    except OSError:
        return "nothing readable"
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") if names else "an empty folder"


def quiet_loading() -> None:
    """Loading bars are noise in worker logs and command output; progress goes through callbacks."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def load_base_pipeline(model: str | os.PathLike):
    """The base model's pipeline, uncached, float32 on the CPU, DDIM scheduler: a private copy to train."""
    return _load_base(model)


def _load_base(model: str | os.PathLike):
    import torch
    from diffusers import DDIMScheduler

    quiet_loading()
    source = _base_source(model)
    backbone = identify_backbone(source)
    try:
        pipeline = _pipeline_class(backbone).from_pretrained(source, dtype=torch.float32, **_LOAD_OPTIONS[backbone])
    except Exception as exc:  # diffusers raises many kinds; all mean "not loadable"
        raise ModelLoadError(f"model {source}: could not load a {BACKBONE_NAMES[backbone]} pipeline: {exc}") from exc
    pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    if backbone == PIXART_ALPHA:  # PixArt-alpha was trained on 120-token captions; its T5 config allows more
        pipeline.tokenizer.model_max_length = min(pipeline.tokenizer.model_max_length, PIXART_MAX_TOKENS)
    return pipeline


PIXART_MAX_TOKENS = 120
_LOAD_OPTIONS = {
    SD: {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False},
    SDXL: {"add_watermarker": False},
    PIXART_ALPHA: {},
}


def _pipeline_class(backbone: str):
    import diffusers

    name = next(name for name, value in PIPELINE_CLASSES.items() if value == backbone)
    return getattr(diffusers, name)


def _base_source(model: str | os.PathLike) -> str:
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"model {path}: expected a diffusers pipeline folder with model_index.json, unet/ or transformer/, "
                f"vae/, text_encoder/, tokenizer/ and scheduler/, "
                f"found: {_listing(path) if path.is_dir() else 'a file'}"
            )
        return str(path)
    if _HUB_ID.match(str(model)):
        return str(model)
    raise ModelLoadError(
        f"model {str(model)!r}: expected an existing diffusers folder or a hub id such as "
        "'stabilityai/stable-diffusion-2-base', found neither"
    )


def identify_backbone(model: str | os.PathLike) -> str:
    """ "sd", "sdxl" or "pixart_alpha", from the pipeline class in the model's ``model_index.json``.

    Reads only that file (a local folder, or the hub's copy when the hub is reachable or cached);
    ModelLoadError if it cannot be read or names another pipeline.
    """
    source = _base_source(model)
    path = Path(source)
    try:
        if path.is_dir():
            index = json.loads((path / "model_index.json").read_text())
        else:
            from diffusers import DiffusionPipeline

            index = DiffusionPipeline.load_config(source)
    except Exception as exc:
        raise ModelLoadError(f"model {source}: could not read model_index.json: {exc}") from exc
    return backbone_for_class(str(index.get("_class_name", "")), f"model {source}")


# ---------------------------------------------------------------- personalization


def detect_format(path: Path) -> str:
    """Name the personalization format found at ``path``; raise ModelLoadError listing what was found."""
    if not path.exists():
        raise ModelLoadError(f"personalization {path}: no such file or folder; expected {EXPECTED_LAYOUTS}")
    if path.is_file():
        name = path.name
        if name in LORA_NAMES:
            return "lora"
        if name in CUSTOM_DIFFUSION_NAMES:
            return "custom_diffusion"
        if path.stem in STATE_DICT_STEMS:
            return "svdiff" if _is_svdiff(path) else "state_dict"
        if path.suffix in (".bin", ".safetensors", ".pt"):
            return "textual_inversion"
        raise ModelLoadError(f"personalization {path}: expected a .bin or .safetensors weights file, got {name}")
    if (path / "model_index.json").is_file() or any((path / c / "config.json").is_file() for c in FULL_COMPONENTS):
        return "full"
    if any((path / n).is_file() for n in LORA_NAMES):
        return "lora"
    if any((path / n).is_file() for n in CUSTOM_DIFFUSION_NAMES):
        return "custom_diffusion"
    files = _state_dict_files(path)
    if files:
        return "svdiff" if all(_is_svdiff(f) for f in files.values()) else "state_dict"
    if any((path / n).is_file() for n in TEXTUAL_INVERSION_NAMES) or _token_files(path):
        return "textual_inversion"
    raise ModelLoadError(f"personalization {path}: expected one of {EXPECTED_LAYOUTS}; found {_listing(path)}")


def apply_personalization(pipeline, path: Path) -> str:
    """Apply the weights at ``path`` to ``pipeline`` in place; return the detected format."""
    kind = detect_format(path)
    backbone = backbone_of(pipeline).name
    if kind not in BACKBONE_FORMATS[backbone]:
        raise ModelLoadError(
            f"personalization {path} ({kind}): not supported on {BACKBONE_NAMES[backbone]} pipelines; "
            f"expected one of {', '.join(BACKBONE_FORMATS[backbone])}"
        )
    loader = {
        "full": _apply_full,
        "state_dict": _apply_state_dicts,
        "svdiff": _apply_svdiff,
        "lora": _apply_lora,
        "textual_inversion": _apply_textual_inversion,
        "custom_diffusion": _apply_custom_diffusion,
    }[kind]
    try:
        loader(pipeline, path)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"personalization {path} ({kind}): could not apply: {exc}") from exc
    return kind


def _state_dict_files(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {path.stem: path}
    found = {}
    for stem in STATE_DICT_STEMS:
        for suffix in (".safetensors", ".bin"):
            if (path / f"{stem}{suffix}").is_file():
                found[stem] = path / f"{stem}{suffix}"
                break
    return found


def _token_files(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("*.bin") if p.name not in CUSTOM_DIFFUSION_NAMES + LORA_NAMES)


def read_weights(path: Path) -> dict:
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"weights {path}: expected a torch or safetensors state dict, could not read: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"weights {path}: expected a dict of tensors, found {type(data).__name__}")
    return data


def _is_svdiff(path: Path) -> bool:
    keys = list(read_weights(path))
    return bool(keys) and all(k.endswith(".delta") for k in keys)


def _full_component_classes(backbone: str) -> dict[str, Any]:
    """The component folders a full fine-tune may hold on each backbone, and their classes."""
    import diffusers
    import transformers

    names = {
        SD: {"unet": "UNet2DConditionModel", "text_encoder": "CLIPTextModel", "tokenizer": "CLIPTokenizer"},
        SDXL: {
            "unet": "UNet2DConditionModel",
            "text_encoder": "CLIPTextModel",
            "text_encoder_2": "CLIPTextModelWithProjection",
            "tokenizer": "CLIPTokenizer",
            "tokenizer_2": "CLIPTokenizer",
        },
        PIXART_ALPHA: {
            "transformer": "PixArtTransformer2DModel",
            "text_encoder": "T5EncoderModel",
            "tokenizer": "T5Tokenizer",
        },
    }[backbone]
    return {name: getattr(diffusers, cls, None) or getattr(transformers, cls) for name, cls in names.items()}


def _apply_full(pipeline, path: Path) -> None:
    components = _full_component_classes(backbone_of(pipeline).name)
    loaded = {}
    for name, cls in components.items():
        folder = path / name
        if folder.is_dir():
            try:
                loaded[name] = cls.from_pretrained(folder)
            except Exception as exc:
                raise ModelLoadError(
                    f"personalization {folder}: expected a diffusers {cls.__name__} folder: {exc}"
                ) from exc
    if not loaded:
        raise ModelLoadError(
            f"personalization {path}: expected {' or '.join(n + '/' for n in components if 'tokenizer' not in n)} "
            f"subfolders, found {_listing(path)}"
        )
    tokenizer = loaded.get("tokenizer", pipeline.tokenizer)
    text_encoder = loaded.get("text_encoder", pipeline.text_encoder)
    rows = text_encoder.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):
        raise ModelLoadError(
            f"personalization {path}: text encoder has {rows} token embeddings, expected at least {len(tokenizer)} "
            "(the tokenizer's size); add tokenizer/ with the trained tokens"
        )
    pipeline.register_modules(**loaded)


def _apply_state_dicts(pipeline, path: Path) -> None:
    files = _state_dict_files(path)
    for stem, file in files.items():
        state = read_weights(file)
        if all(k.endswith(".delta") for k in state):
            fuse_spectral_shifts(getattr(pipeline, stem), state, file)
        elif stem == "unet":
            _load_unet_state(pipeline.unet, state, file)
        else:
            _load_text_encoder_state(pipeline, state, file)


def _apply_svdiff(pipeline, path: Path) -> None:
    for stem, file in _state_dict_files(path).items():
        fuse_spectral_shifts(getattr(pipeline, stem), read_weights(file), file)


def _strict_load(module, state: dict, file: Path, what: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelLoadError(
            f"personalization {file}: expected a full {what} state dict for this base model; "
            f"missing {len(missing)} keys (e.g. {missing[:3]}), unexpected {len(unexpected)} (e.g. {unexpected[:3]})"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ModelLoadError(
                f"personalization {file}: {key}: expected shape {tuple(own[key].shape)}, found {tuple(value.shape)}"
            )
    module.load_state_dict(state, strict=True)


def _load_unet_state(unet, state: dict, file: Path) -> None:
    # Custom Diffusion runs of the reference code save the whole UNet including its attention processors.
    custom = {k: v for k, v in state.items() if "custom_diffusion" in k}
    plain = {k: v for k, v in state.items() if "custom_diffusion" not in k}
    _strict_load(unet, plain, file, "UNet")
    if custom:
        fuse_custom_diffusion(unet, custom, file)


def _match_prefix(state: dict, own_keys, prefix: str = "text_model.") -> dict:
    """Older transformers name CLIP text weights "text_model.<...>", newer ones "<...>"; follow the model."""
    own_prefixed = any(k.startswith(prefix) for k in own_keys)
    state_prefixed = all(k.startswith(prefix) for k in state)
    if state_prefixed and not own_prefixed:
        return {k.removeprefix(prefix): v for k, v in state.items()}
    if own_prefixed and not any(k.startswith(prefix) for k in state):
        return {prefix + k: v for k, v in state.items()}
    return state


def _load_text_encoder_state(pipeline, state: dict, file: Path) -> None:
    state = _match_prefix(state, pipeline.text_encoder.state_dict())
    # "text_model.embeddings..." or "embeddings..." depending on the transformers version that saved it
    rows = next((v.shape[0] for k, v in state.items() if k.endswith("embeddings.token_embedding.weight")), None)
    extra = rows - len(pipeline.tokenizer) if rows is not None else 0
    if extra > 0:
        tokens = _placeholder_tokens(file)
        if len(tokens) != extra:
            raise ModelLoadError(
                f"personalization {file}: the text encoder has {extra} more token embeddings than the tokenizer; "
                "expected their names as placeholder_token in a hparams.yml next to it (or use learned_embeds.bin)"
            )
        pipeline.tokenizer.add_tokens(tokens)
        pipeline.text_encoder.resize_token_embeddings(len(pipeline.tokenizer))
    _strict_load(pipeline.text_encoder, state, file, "text encoder")


def _placeholder_tokens(file: Path) -> list[str]:
    """Read ``placeholder_token`` from a reference-code ``hparams.yml`` near a checkpoint."""
    for folder in (file.parent, file.parent.parent, file.parent.parent / "logs", file.parent / "logs"):
        config = folder / "hparams.yml"
        if config.is_file():
            match = re.search(r"^placeholder_token:\s*['\"]?([^'\"\n]+)", config.read_text(), re.MULTILINE)
            if match:
                return [match.group(1).strip()]
    return []


def fuse_spectral_shifts(model, deltas: dict, file: Path, scale: float = 1.0) -> None:
    """SVDiff: replace each weight W = U diag(S) V^T by U diag(ReLU(S + scale * delta)) V^T, once."""
    import torch

    for key, delta in deltas.items():
        module_path = key.removesuffix(".delta").removesuffix(".weight")
        try:
            module = _submodule(model, module_path)
        except AttributeError:
            raise ModelLoadError(
                f"personalization {file}: {key}: no module {module_path!r} in {type(model).__name__}"
            ) from None
        weight = getattr(module, "weight", None)
        if weight is None:
            raise ModelLoadError(f"personalization {file}: {key}: module {module_path!r} has no weight")
        original = weight.detach().double()
        matrix = original.reshape(weight.shape[0], -1) if weight.ndim > 1 else original[None]  # 1-D: a 1 x C matrix
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        if tuple(delta.shape) != tuple(s.shape):
            raise ModelLoadError(
                f"personalization {file}: {key}: expected a delta of shape {tuple(s.shape)}, found {tuple(delta.shape)}"
            )
        shifted = u @ torch.diag(torch.relu(s + scale * delta.double())) @ vh
        with torch.no_grad():
            weight.copy_(shifted.reshape(weight.shape).to(weight.dtype))


def _submodule(model, path: str):
    try:
        return model.get_submodule(path)
    except AttributeError:
        if path.startswith("text_model."):  # text-encoder paths saved by older transformers
            return model.get_submodule(path.removeprefix("text_model."))
        raise


def fuse_custom_diffusion(unet, weights: dict, file: Path) -> None:
    """Copy Custom Diffusion's trained projections into each attention module's own layers."""
    import torch

    targets = {
        "to_q_custom_diffusion.weight": "to_q.weight",
        "to_k_custom_diffusion.weight": "to_k.weight",
        "to_v_custom_diffusion.weight": "to_v.weight",
        "to_out_custom_diffusion.0.weight": "to_out.0.weight",
        "to_out_custom_diffusion.0.bias": "to_out.0.bias",
    }
    own = dict(unet.named_parameters())
    for key, value in weights.items():
        attention, _, suffix = key.partition(".processor.")
        if not suffix and (not hasattr(value, "numel") or value.numel() == 0):
            continue  # diffusers saves an empty entry for each untrained (self-attention) processor
        if suffix not in targets:
            raise ModelLoadError(f"personalization {file}: {key}: expected <attention>.processor.<{'|'.join(targets)}>")
        name = f"{attention}.{targets[suffix]}"
        if name not in own:
            raise ModelLoadError(f"personalization {file}: {key}: this UNet has no {name}")
        if own[name].shape != value.shape:
            raise ModelLoadError(
                f"personalization {file}: {key}: expected shape {tuple(own[name].shape)}, found {tuple(value.shape)}"
            )
        with torch.no_grad():
            own[name].copy_(value.to(own[name].dtype))


def _apply_lora(pipeline, path: Path) -> None:
    if path.is_file():
        folder, name = path.parent, path.name
    else:
        folder, name = path, next(n for n in LORA_NAMES if (path / n).is_file())
    pipeline.load_lora_weights(str(folder), weight_name=name)
    pipeline.fuse_lora()
    pipeline.unload_lora_weights()


def _apply_textual_inversion(pipeline, path: Path) -> None:
    files = [path] if path.is_file() else [p for p in (path / n for n in TEXTUAL_INVERSION_NAMES) if p.is_file()]
    files = files or _token_files(path)
    for file in files:
        pipeline.load_textual_inversion(read_weights(file))


def _apply_custom_diffusion(pipeline, path: Path) -> None:
    weight_file = path if path.is_file() else next(path / n for n in CUSTOM_DIFFUSION_NAMES if (path / n).is_file())
    fuse_custom_diffusion(pipeline.unet, read_weights(weight_file), weight_file)
    if path.is_dir():
        for token_file in _token_files(path):
            pipeline.load_textual_inversion(read_weights(token_file))
