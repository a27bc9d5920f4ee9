"""Speed paths for GPU workers: a compiled denoiser, CUDA-graph replay, rows per call from a memory budget.

All are off unless asked for (the CPU path is plain eager float32); ``SpeedOptions`` says which are
on. Reduced precision is the pipeline's dtype (``generation.pipelines.resolve_dtype``: float16 on
GPU by default, bfloat16 on request).

* ``compile``: ``torch.compile`` of the denoiser, in place (the module keeps its config and attention
  processors), with inductor's FX-graph cache in ``compile_cache_dir`` so a restarted worker reuses
  the kernels instead of compiling again.
* ``cuda_graphs``: each distinct call shape of up to ``CUDA_GRAPH_MAX_ROWS`` rows is captured once
  into a CUDA graph and replayed, which removes the per-kernel launch cost that dominates small
  batches. CUDA only.
* ``memory_budget_gib``: how many rows (images x branches) one denoiser call may hold, measured by a
  probe call on the GPU; ``generation.api.generate_many`` packs the prompts and seeds of one concept
  into calls of that size.

Runs whose sampler installs its own attention processors (Masked, Photoswap) call the denoiser
eagerly: their processors hold per-step state that a compiled or captured graph would freeze.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import ParameterError

CUDA_GRAPH_MAX_ROWS = 8
GIB = 2**30


@dataclass(frozen=True)
class SpeedOptions:
    """Which speed paths a run takes; every one is off by default."""

    compile: bool = False
    compile_cache_dir: str | None = None
    cuda_graphs: bool = False
    memory_budget_gib: float | None = None

    def check(self, device_type: str | None = None) -> SpeedOptions:
        """Raise ParameterError for a combination that cannot run (on this device type, when given)."""
        for name in ("compile", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.compile and self.cuda_graphs:
            raise ParameterError("compile and cuda_graphs: expected at most one of them, got both")
        budget = self.memory_budget_gib
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0):
            raise ParameterError(f"memory_budget_gib: expected a number > 0, got {budget!r}")
        if device_type is not None and device_type != "cuda":
            for name in ("cuda_graphs", "memory_budget_gib"):
                if getattr(self, name):
                    raise ParameterError(f"{name}: a GPU speed path, expected a CUDA device, got {device_type}")
        if self.compile_cache_dir is not None and not self.compile:
            raise ParameterError("compile_cache_dir: expected compile=true with it, got compile=false")
        return self


def compile_denoiser(denoiser, cache_dir: str | os.PathLike | None = None) -> None:
    """``torch.compile`` the denoiser in place; kernels are cached under ``cache_dir`` across processes."""
    import torch

    if cache_dir is not None:
        folder = Path(cache_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)  # read by inductor each time it looks up its cache
        torch._inductor.config.fx_graph_cache = True
    denoiser.compile(fullgraph=False, dynamic=False)


def processors_are_own(denoiser, own: dict[str, Any]) -> bool:
    """Whether the denoiser runs the attention processors it was loaded with (no sampler's hooks installed)."""
    current = denoiser.attn_processors
    return current.keys() == own.keys() and all(current[name] is own[name] for name in own)


def denoiser_call(backbone, options: SpeedOptions, own_processors: dict[str, Any]):
    """The function a run calls the denoiser through: ``(latents, timestep, conditioning) -> prediction``."""
    if not (options.compile or options.cuda_graphs):
        return backbone.denoise
    if not processors_are_own(backbone.denoiser, own_processors):
        return functools.partial(backbone.denoise, module=backbone.denoiser.forward)  # eager, past the compiled wrapper
    if options.cuda_graphs:
        return _graphs_for(backbone)
    return backbone.denoise


_GRAPHS: dict[int, CudaGraphs] = {}
_GRAPHS_LOCK = threading.Lock()


def clear_graphs() -> None:
    """Drop every captured graph (with the pipeline cache: a new denoiser may reuse a dropped one's id)."""
    with _GRAPHS_LOCK:
        _GRAPHS.clear()


def _graphs_for(backbone) -> CudaGraphs:
    """One set of captured graphs per denoiser, kept for the life of the process (like the pipeline cache)."""
    with _GRAPHS_LOCK:
        key = id(backbone.denoiser)
        if key not in _GRAPHS:
            _GRAPHS[key] = CudaGraphs(backbone)
        return _GRAPHS[key]


class CudaGraphs:
    """Replays one captured CUDA graph per call shape; larger calls run as they are.

    Inputs are copied into the graph's static buffers and the output is cloned out of them, so a
    caller never sees a buffer the next replay overwrites.
    """

    def __init__(self, backbone, max_rows: int = CUDA_GRAPH_MAX_ROWS):
        self.backbone, self.max_rows = backbone, max_rows
        self.graphs: dict[tuple, tuple] = {}  # each with its own memory pool: shapes replay in any order

    def __call__(self, latents, timestep, conditioning):
        if latents.shape[0] > self.max_rows:
            return self.backbone.denoise(latents, timestep, conditioning)
        key = _shape_key(latents, conditioning)
        if key not in self.graphs:
            self.graphs[key] = self._capture(latents, timestep, conditioning)
        graph, inputs, output = self.graphs[key]
        for static, value in zip(inputs, _tensors(latents, timestep, conditioning), strict=True):
            static.copy_(value)
        graph.replay()
        return output.clone()

    def _capture(self, latents, timestep, conditioning):
        import torch

        from generation.backbones import Conditioning

        device = latents.device
        step = torch.as_tensor(timestep, device=device).clone()
        static_conditioning = Conditioning(
            conditioning.hidden.clone(), {name: value.clone() for name, value in conditioning.extras.items()}
        )
        static_latents = latents.clone()
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up outside the graph: lazy initialisation, autotuned kernels
                self.backbone.denoise(static_latents, step, static_conditioning)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.backbone.denoise(static_latents, step, static_conditioning)
        return graph, list(_tensors(static_latents, step, static_conditioning)), output


def _tensors(latents, timestep, conditioning):
    yield latents
    yield timestep
    yield conditioning.hidden
    for name in sorted(conditioning.extras):
        yield conditioning.extras[name]


def _shape_key(latents, conditioning) -> tuple:
    extras = tuple((name, tuple(value.shape), str(value.dtype)) for name, value in sorted(conditioning.extras.items()))
    return tuple(latents.shape), str(latents.dtype), tuple(conditioning.hidden.shape), extras


def rows_for_budget(backbone, budget_gib: float) -> int:
    """How many rows one denoiser call may hold within ``budget_gib`` of activation memory (CUDA probe).

    Two probe calls, of one and of two rows, give the memory one more row costs at this backbone's
    latent size and text length; the budget is for activations, on top of the loaded weights.
    """
    import torch

    from generation.backbones import Conditioning

    denoiser = backbone.denoiser
    device, dtype = denoiser.device, denoiser.dtype
    encoded = backbone.encode([""]).conditioning[""]
    peaks = []
    for rows in (1, 2):
        latents = torch.zeros((rows, backbone.latent_channels, *backbone.latent_size), device=device, dtype=dtype)
        conditioning = Conditioning.concat([encoded.rows(rows)])
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            backbone.denoise(latents, torch.tensor(500, device=device), conditioning)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - before)
    per_row = max(peaks[1] - peaks[0], 1)
    fixed = max(peaks[0] - per_row, 0)
    return max(1, int((budget_gib * GIB - fixed) // per_row))
