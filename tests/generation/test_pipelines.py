"""Base-model loading, the per-process cache, and every personalization format round-tripped."""

from __future__ import annotations

import pytest
import torch

from generation import pipelines
from generation.errors import ModelLoadError


@pytest.fixture(autouse=True)
def empty_cache():
    pipelines.clear_cache()
    yield
    pipelines.clear_cache()


@pytest.fixture
def fresh(tiny_model_dir):
    """A separately loaded copy of the tiny pipeline to derive personalization weights from."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(tiny_model_dir, safety_checker=None, requires_safety_checker=False)


def unet_output(unet, seed=0):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
    with torch.inference_mode():
        return unet(latents, 500, encoder_hidden_states=context).sample


def perturb(module, scale=0.05, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


# ---- base model and errors


def test_cache_returns_the_same_pipeline(tiny_model_dir):
    first = pipelines.load_pipeline(tiny_model_dir, device="cpu")
    assert pipelines.load_pipeline(str(tiny_model_dir), device="cpu", dtype="float32") is first
    pipelines.clear_cache()
    assert pipelines.load_pipeline(tiny_model_dir, device="cpu") is not first


def test_missing_model_folder_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match="expected an existing diffusers folder or a hub id"):
        pipelines.load_pipeline(str(tmp_path / "nope"), device="cpu")


def test_folder_without_model_index_lists_what_was_found(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelLoadError) as error:
        pipelines.load_pipeline(tmp_path, device="cpu")
    message = str(error.value)
    assert str(tmp_path) in message and "model_index.json" in message and "notes.txt, unet/" in message


def test_bad_dtype_and_device_are_rejected(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="dtype float16 on cpu"):
        pipelines.load_pipeline(tiny_model_dir, device="cpu", dtype="fp16")
    with pytest.raises(ModelLoadError, match="dtype: expected float32, float16 or bfloat16, got 'int8'"):
        pipelines.load_pipeline(tiny_model_dir, device="cpu", dtype="int8")
    with pytest.raises(ModelLoadError, match="device: expected"):
        pipelines.load_pipeline(tiny_model_dir, device="tpu")


def test_missing_personalization_names_the_path(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match=f"personalization {tmp_path / 'gone'}: no such file"):
        pipelines.load_pipeline(tiny_model_dir, tmp_path / "gone", device="cpu")


def test_unknown_personalization_layout_lists_found_and_expected(tiny_model_dir, tmp_path):
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ModelLoadError) as error:
        pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    message = str(error.value)
    assert "found weights.txt" in message and "pytorch_lora_weights.safetensors" in message
    with pytest.raises(ModelLoadError, match=r"found weights\.txt"):  # nothing was cached under that key
        pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")


def test_wrong_state_dict_is_refused_and_not_cached(tiny_model_dir, tmp_path):
    torch.save({"conv_in.weight": torch.zeros(3)}, tmp_path / "unet.bin")
    for _ in range(2):  # the half-applied pipeline was not cached: the second load fails the same way
        with pytest.raises(ModelLoadError, match=r"unet.bin: expected a full UNet state dict .* missing \d+ keys"):
            pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")


def test_svdiff_delta_of_wrong_shape_names_key_and_shapes(tiny_model_dir, tmp_path):
    torch.save({"conv_in.delta": torch.zeros(5)}, tmp_path / "unet.bin")
    with pytest.raises(ModelLoadError, match=r"conv_in.delta: expected a delta of shape \(32,\), found \(5,\)"):
        pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")


# ---- round trips


def test_full_fine_tuned_folder(tiny_model_dir, tmp_path, fresh):
    perturb(fresh.unet)
    perturb(fresh.text_encoder)
    fresh.unet.save_pretrained(tmp_path / "unet")
    fresh.text_encoder.save_pretrained(tmp_path / "text_encoder")
    loaded = pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    torch.testing.assert_close(unet_output(loaded.unet), unet_output(fresh.unet))
    torch.testing.assert_close(loaded.text_encoder.state_dict(), fresh.text_encoder.state_dict())
    assert pipelines.load_pipeline(tiny_model_dir, device="cpu") is not loaded


def test_state_dict_files(tiny_model_dir, tmp_path, fresh):
    perturb(fresh.unet)
    perturb(fresh.text_encoder, seed=2)
    torch.save(fresh.unet.state_dict(), tmp_path / "unet.bin")
    # saved the way older transformers name the weights ("text_model.embeddings...")
    torch.save(
        {f"text_model.{k}": v for k, v in fresh.text_encoder.state_dict().items()}, tmp_path / "text_encoder.bin"
    )
    loaded = pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    torch.testing.assert_close(unet_output(loaded.unet), unet_output(fresh.unet))
    torch.testing.assert_close(loaded.text_encoder.state_dict(), fresh.text_encoder.state_dict())


def as_matrix(weight):
    """How SVDiff sees a weight: Conv2d as out x (in * k * k), 1-D weights as a 1 x C matrix."""
    return weight.reshape(weight.shape[0], -1) if weight.ndim > 1 else weight[None]


def test_svdiff_spectral_shifts_are_fused(tiny_model_dir, tmp_path, fresh):
    names = {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k": 32,  # Linear
        "conv_in": 32,  # Conv2d, reshaped to (out, in * k * k)
        "down_blocks.0.resnets.0.norm1": 1,  # GroupNorm weight, a 1 x C matrix
    }
    generator = torch.Generator().manual_seed(0)
    deltas = {f"{name}.delta": torch.randn(size, generator=generator) * 0.1 for name, size in names.items()}
    torch.save(deltas, tmp_path / "unet.bin")
    loaded = pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    for name in names:
        before = fresh.unet.get_submodule(name).weight.detach().double()
        after = loaded.unet.get_submodule(name).weight.detach().double()
        expected = torch.relu(torch.linalg.svdvals(as_matrix(before)) + deltas[f"{name}.delta"].double())
        torch.testing.assert_close(
            torch.linalg.svdvals(as_matrix(after)), expected.sort(descending=True).values, atol=1e-5, rtol=1e-5
        )
    untouched = "up_blocks.1.resnets.0.conv1.weight"
    torch.testing.assert_close(loaded.unet.state_dict()[untouched], fresh.unet.state_dict()[untouched])


def test_lora_through_diffusers_loaders(tiny_model_dir, tmp_path, fresh):
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    config = LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    fresh.unet.add_adapter(config)
    expected = unet_output(fresh.unet)
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=get_peft_model_state_dict(fresh.unet))
    loaded = pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    torch.testing.assert_close(unet_output(loaded.unet), expected, atol=1e-5, rtol=1e-5)
    assert not any("lora" in name for name in loaded.unet.state_dict())  # fused, adapters removed


def test_textual_inversion_embedding(tiny_model_dir, tmp_path):
    from safetensors.torch import save_file

    vector = torch.linspace(-1, 1, 32)
    save_file({"<dog>": vector}, str(tmp_path / "learned_embeds.safetensors"))
    loaded = pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    token_id = loaded.tokenizer.convert_tokens_to_ids("<dog>")
    torch.testing.assert_close(loaded.text_encoder.get_input_embeddings().weight[token_id], vector)
    assert len(loaded.tokenizer("a <dog> dog", add_special_tokens=False).input_ids) == 3


def test_textual_inversion_token_works_with_masked_and_photoswap(tiny_model_dir, tmp_path, run_sampler):
    torch.save({"<dog>": torch.randn(32)}, tmp_path / "learned_embeds.bin")
    loaded = pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    for name in ("masked", "photoswap"):
        result = run_sampler(name, token="<dog>", pipeline=loaded)
        assert torch.isfinite(result.latents).all()


def test_custom_diffusion_is_fused_and_composes_with_photoswap(tiny_model_dir, tmp_path, fresh, run_sampler):
    from diffusers.models.attention_processor import CustomDiffusionAttnProcessor2_0

    unet = fresh.unet
    processors = {}
    for name in unet.attn_processors:
        cross = name.endswith("attn2.processor")
        block = name.split(".")[0]
        width = (
            unet.config.block_out_channels[-1]
            if block == "mid_block"
            else unet.config.block_out_channels[int(name.split(".")[1])]
            if block == "down_blocks"
            else list(reversed(unet.config.block_out_channels))[int(name.split(".")[1])]
        )
        processors[name] = CustomDiffusionAttnProcessor2_0(
            train_kv=cross,
            train_q_out=cross,
            hidden_size=width,
            cross_attention_dim=unet.config.cross_attention_dim if cross else None,
        )
    unet.set_attn_processor(processors)
    perturb(torch.nn.ModuleList([p for p in unet.attn_processors.values() if p.train_kv]), scale=0.2)
    expected = unet_output(unet)
    unet.save_attn_procs(tmp_path, safe_serialization=False)
    torch.save({"sks": torch.randn(32)}, tmp_path / "sks.bin")
    assert (tmp_path / "pytorch_custom_diffusion_weights.bin").is_file()
    loaded = pipelines.load_pipeline(tiny_model_dir, tmp_path, device="cpu")
    torch.testing.assert_close(unet_output(loaded.unet), expected, atol=1e-5, rtol=1e-5)
    assert not any("CustomDiffusion" in type(p).__name__ for p in loaded.unet.attn_processors.values())
    assert torch.isfinite(run_sampler("photoswap", pipeline=loaded).latents).all()


def test_text_encoder_with_an_added_token_reads_its_name_from_hparams(tiny_model_dir, tmp_path, fresh):
    """The reference code's Textual Inversion checkpoints: a whole text encoder with one extra token row."""
    fresh.tokenizer.add_tokens(["<dog>"])
    fresh.text_encoder.resize_token_embeddings(len(fresh.tokenizer))
    checkpoint = tmp_path / "checkpoint-1000"
    checkpoint.mkdir()
    torch.save(fresh.text_encoder.state_dict(), checkpoint / "text_encoder.bin")
    with pytest.raises(ModelLoadError, match=r"expected their names as placeholder_token in a hparams\.yml"):
        pipelines.load_pipeline(tiny_model_dir, checkpoint, device="cpu")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "hparams.yml").write_text("class_name: dog\nplaceholder_token: <dog>\n")
    loaded = pipelines.load_pipeline(tiny_model_dir, checkpoint, device="cpu")
    token_id = loaded.tokenizer.convert_tokens_to_ids("<dog>")
    torch.testing.assert_close(
        loaded.text_encoder.get_input_embeddings().weight[token_id],
        fresh.text_encoder.get_input_embeddings().weight[token_id],
    )
