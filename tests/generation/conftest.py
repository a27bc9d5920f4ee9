"""Fixtures for the generation tests: the tiny pipeline loaded once, a run helper, the tiny encoders."""

from __future__ import annotations

import pytest

STEPS = 4
TEMPLATE = "a {concept} in the snow"


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_model_dir):
    from generation.pipelines import load_pipeline

    return load_pipeline(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def run_sampler(tiny_pipeline):
    """run_sampler(name, params, seed_indices=(0, 1), superclass="dog", paper_batching=False) -> BatchResult."""
    from generation.loop import sample_batch
    from generation.prompts import build_prompts
    from generation.samplers import build_sampler
    from generation.seeds import seed_for

    def run(
        name,
        params=None,
        seed_indices=(0, 1),
        superclass="dog",
        token="sks",
        template=TEMPLATE,
        steps=STEPS,
        pipeline=None,
        paper_batching=False,
    ):
        prompts = build_prompts(template, token, superclass)
        seeds = [seed_for(template, index) for index in seed_indices]
        sampler = build_sampler(name, params, paper_batching=paper_batching)
        return sample_batch(pipeline or tiny_pipeline, sampler, prompts, seeds, steps=steps)

    return run


@pytest.fixture
def unet_calls(tiny_pipeline):
    """The batch size of every call of the tiny pipeline's UNet during the test, counted at the model itself."""
    sizes: list[int] = []

    def count(module, args, kwargs):
        sizes.append((args[0] if args else kwargs["sample"]).shape[0])

    handle = tiny_pipeline.unet.register_forward_pre_hook(count, with_kwargs=True)
    yield sizes
    handle.remove()


@pytest.fixture(scope="session")
def tiny_encoders_dir(tmp_path_factory):
    """The tiny CLIP (``clip/``) and DINO (``dino/``), built once per session."""
    from generation.tiny import save_tiny_clip, save_tiny_dino

    folder = tmp_path_factory.mktemp("tiny-encoders")
    save_tiny_clip(folder)
    save_tiny_dino(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory):
    """The tiny SD-XL pipeline folder, built once per session."""
    from generation.tiny import ensure_tiny_sdxl

    return ensure_tiny_sdxl(tmp_path_factory.getbasetemp() / "tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_pixart_dir(tmp_path_factory):
    """The tiny PixArt-alpha pipeline folder, built once per session."""
    from generation.tiny import ensure_tiny_pixart

    return ensure_tiny_pixart(tmp_path_factory.getbasetemp() / "tiny-pixart")


@pytest.fixture(scope="session")
def backbone_dirs(tiny_model_dir, tiny_sdxl_dir, tiny_pixart_dir):
    """Backbone name -> tiny pipeline folder, for tests that run on every backbone."""
    return {"sd": tiny_model_dir, "sdxl": tiny_sdxl_dir, "pixart_alpha": tiny_pixart_dir}
