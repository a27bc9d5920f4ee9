"""What each method trains, how it is checkpointed, and how its result is written for the loaders.

* ``dreambooth``: the whole UNet (and the text encoder with ``train_text_encoder``); the result is a
  pipeline folder (``save_pretrained``), which ``generation.pipelines`` reads as the ``full`` format.
* ``lora``: peft LoRA adapters on the UNet's attention projections, or on all its linear and
  convolution layers (``lora_targets``), added with ``unet.add_adapter``, the rest frozen; the result
  is ``pytorch_lora_weights.safetensors`` written by diffusers' own LoRA saver.
* ``textual_inversion``: one new token's embedding row; the result is ``learned_embeds.safetensors``
  ({token: embedding}), as diffusers' ``load_textual_inversion`` reads it.
"""

from __future__ import annotations

from pathlib import Path

from generation.errors import FineTuneError
from generation.training.photos import mix
from generation.training.settings import LORA_TARGET_MODULES, FineTuneSettings


class Method:
    """The trainable part of a pipeline. Subclasses set it up in ``__init__`` (before the move to the device)."""

    format = ""
    trains_text = False  # the prompt embeddings change during training, so they are encoded every step

    def __init__(self, pipeline, settings: FineTuneSettings, concept_token: str | None, initializer: str | None):
        self.pipeline = pipeline
        self.settings = settings
        pipeline.vae.requires_grad_(False)
        pipeline.text_encoder.requires_grad_(False)
        pipeline.unet.requires_grad_(False)

    def trainable(self) -> dict:
        """Name -> parameter, in a fixed order (the optimizer's state refers to parameters by position)."""
        raise NotImplementedError

    def load_trainable(self, tensors: dict) -> None:
        import torch

        own = self.trainable()
        if set(own) != set(tensors):
            raise FineTuneError("checkpoint: its trainable tensors do not match this method's; expected the same run")
        with torch.no_grad():
            for name, parameter in own.items():
                parameter.copy_(tensors[name].to(parameter.device, parameter.dtype))

    def train_mode(self) -> None:
        self.pipeline.vae.eval()
        self.pipeline.text_encoder.eval()
        self.pipeline.unet.eval()

    def after_step(self) -> None:
        """Called after each optimizer step."""

    def save(self, folder: Path) -> None:
        raise NotImplementedError


class DreamBooth(Method):
    format = "full"

    def __init__(self, pipeline, settings, concept_token, initializer):
        super().__init__(pipeline, settings, concept_token, initializer)
        pipeline.unet.requires_grad_(True)
        if settings.train_text_encoder:
            pipeline.text_encoder.requires_grad_(True)
            self.trains_text = True

    def trainable(self) -> dict:
        named = {f"unet.{name}": p for name, p in self.pipeline.unet.named_parameters()}
        if self.settings.train_text_encoder:
            named.update({f"text_encoder.{name}": p for name, p in self.pipeline.text_encoder.named_parameters()})
        return named

    def train_mode(self) -> None:
        super().train_mode()
        self.pipeline.unet.train()
        if self.settings.train_text_encoder:
            self.pipeline.text_encoder.train()

    def save(self, folder: Path) -> None:
        self.pipeline.save_pretrained(folder, safe_serialization=True)


class LoRA(Method):
    format = "lora"

    def __init__(self, pipeline, settings, concept_token, initializer, frozen_dtype=None):
        import torch
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        super().__init__(pipeline, settings, concept_token, initializer)
        if frozen_dtype is not None:  # the frozen base weights in the autocast dtype on a GPU; LoRA stays fp32
            pipeline.unet.to(dtype=frozen_dtype)
        # lora_alpha = rank, so the adapters load at scale 1, as diffusers' script trains them
        config = LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_rank,
            init_lora_weights="gaussian",
            target_modules=LORA_TARGET_MODULES[settings.lora_targets],
        )
        with torch.random.fork_rng(devices=[]):  # the adapters' initialisation is a function of the seed
            torch.manual_seed(mix(settings.seed, "lora-init") % 2**32)
            pipeline.unet.add_adapter(config)
        cast_training_params(pipeline.unet, dtype=torch.float32)

    def trainable(self) -> dict:
        return {f"unet.{name}": p for name, p in self.pipeline.unet.named_parameters() if p.requires_grad}

    def train_mode(self) -> None:
        super().train_mode()
        self.pipeline.unet.train()

    def save(self, folder: Path) -> None:
        from diffusers import StableDiffusionPipeline
        from peft.utils import get_peft_model_state_dict

        # peft's own key names (lora_A / lora_B), which diffusers' loader reads for every layer type;
        # diffusers' convert_state_dict_to_diffusers renames only the attention keys, and a file that
        # mixes the two namings loads without its attention adapters.
        unet = self.pipeline.unet
        layers = get_peft_model_state_dict(unet)
        StableDiffusionPipeline.save_lora_weights(
            save_directory=folder,
            unet_lora_layers={name: tensor.detach().float().cpu() for name, tensor in layers.items()},
            safe_serialization=True,
            unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
        )


class TextualInversion(Method):
    format = "textual_inversion"
    trains_text = True

    def __init__(self, pipeline, settings, concept_token, initializer, frozen_dtype=None):
        import torch

        super().__init__(pipeline, settings, concept_token, initializer)
        tokenizer, text_encoder = pipeline.tokenizer, pipeline.text_encoder
        if not concept_token:
            raise FineTuneError(
                "instance_prompt: textual_inversion learns one new word; expected the class prompt plus one "
                "concept token, e.g. 'a photo of <sks> dog' and 'a photo of dog'"
            )
        # diffusers' load_textual_inversion refuses a token already in the vocabulary, so training does too
        if concept_token in tokenizer.get_vocab() or tokenizer.add_tokens([concept_token]) != 1:
            raise FineTuneError(
                f"instance_prompt: the concept token {concept_token!r} is already a word of the tokenizer; "
                "textual_inversion needs a new one, e.g. <sks>"
            )
        initializer_ids = tokenizer.encode(initializer or "", add_special_tokens=False)
        if not initializer_ids:
            raise FineTuneError(f"class_prompt: expected a class word to start the embedding from, got {initializer!r}")
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        self.token = concept_token
        self.token_id = tokenizer.convert_tokens_to_ids(concept_token)
        weight = text_encoder.get_input_embeddings().weight
        with torch.no_grad():
            weight[self.token_id] = weight[initializer_ids].mean(dim=0)
        weight.requires_grad_(True)
        self.original = weight.detach().clone()
        self.keep = torch.ones(weight.shape[0], dtype=torch.bool)
        self.keep[self.token_id] = False
        if frozen_dtype is not None:
            pipeline.unet.to(dtype=frozen_dtype)

    def trainable(self) -> dict:
        return {"text_encoder.token_embedding": self.pipeline.text_encoder.get_input_embeddings().weight}

    def train_mode(self) -> None:
        super().train_mode()
        self.pipeline.text_encoder.train()

    def after_step(self) -> None:
        """Put every row but the new token's back: the optimizer (weight decay, Adam's momentum) moves them."""
        import torch

        weight = self.pipeline.text_encoder.get_input_embeddings().weight
        if self.original.device != weight.device:
            self.original, self.keep = self.original.to(weight.device), self.keep.to(weight.device)
        with torch.no_grad():
            weight[self.keep] = self.original[self.keep]

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        weight = self.pipeline.text_encoder.get_input_embeddings().weight
        embedding = weight[self.token_id : self.token_id + 1].detach().float().cpu().contiguous()
        folder.mkdir(parents=True, exist_ok=True)
        save_file({self.token: embedding}, str(folder / "learned_embeds.safetensors"), metadata={"format": "pt"})


METHOD_CLASSES = {"dreambooth": DreamBooth, "lora": LoRA, "textual_inversion": TextualInversion}


def build_method(pipeline, settings: FineTuneSettings, concept_token, initializer, frozen_dtype) -> Method:
    cls = METHOD_CLASSES[settings.method]
    if cls is DreamBooth:  # its frozen parts are saved with the result, so they stay float32
        return cls(pipeline, settings, concept_token, initializer)
    return cls(pipeline, settings, concept_token, initializer, frozen_dtype=frozen_dtype)


def concept_words(instance_prompt: str, class_prompt: str) -> tuple[str | None, str | None]:
    """(concept token, class word) from the two prompts: the one word the instance prompt adds, and the
    word after it ("a photo of sks dog" vs "a photo of dog" -> ("sks", "dog")); None where not single."""
    class_words = class_prompt.split()
    words = instance_prompt.split()
    added = [index for index, word in enumerate(words) if word not in class_words]
    if len(added) != 1:
        return None, (class_words[-1] if class_words else None)
    index = added[0]
    following = words[index + 1] if index + 1 < len(words) else None
    initializer = following if following in class_words else (class_words[-1] if class_words else None)
    return words[index], initializer
