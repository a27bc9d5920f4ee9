"""Attention processors for the samplers that look inside the UNet (Masked, Photoswap).

Both are installed for one run and removed afterwards (``installed_processors``); the model keeps
its own processors (SDPA) otherwise.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any


def _split_heads(tensor, heads: int):
    batch, length, width = tensor.shape
    return tensor.view(batch, length, heads, width // heads).transpose(1, 2)


def _to_tokens(attn, hidden_states):
    """Flatten a 4-D feature map into tokens and apply the module's group norm, as diffusers does."""
    if hidden_states.ndim == 4:
        batch, channels, height, width = hidden_states.shape
        hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    return hidden_states


def attention_probs(attn, query, key, bias=None):
    """softmax(Q K^T * scale + bias) in float32, shape (batch, heads, queries, keys).

    ``bias`` is the additive attention mask (PixArt-alpha masks its text padding this way), or None.
    """
    scores = query.float() @ key.float().transpose(-1, -2) * attn.scale
    if bias is not None:
        scores = scores + bias.float()
    return scores.softmax(dim=-1)


def mask_bias(attn, attention_mask, keys: int, batch: int):
    """The additive mask a processor receives, as (batch, heads, 1 or queries, keys); None if there is none."""
    if attention_mask is None:
        return None
    bias = attn.prepare_attention_mask(attention_mask, keys, batch)
    return bias.view(batch, attn.heads, -1, bias.shape[-1])


class AttentionRecorder:
    """Running average, over cross-attention layers, of a few key columns for a few batch rows.

    Each layer's probabilities for the chosen columns are averaged over heads and columns, resized
    bilinearly to the latent resolution and folded into the average; full maps are never stored.
    """

    def __init__(self, latent_size: tuple[int, int]):
        self.latent_size = latent_size
        self.rows: slice | None = None
        self.columns: list[int] = []
        self.average = None
        self.layers = 0

    def start(self, rows: slice, columns: list[int]) -> None:
        self.rows, self.columns, self.average, self.layers = rows, list(columns), None, 0

    def stop(self) -> None:
        self.rows = None

    def add(self, column_map) -> None:
        import torch.nn.functional as F

        batch, queries = column_map.shape
        height, width = self.latent_size
        factor = math.sqrt(height * width / queries)
        grid = column_map.view(batch, 1, round(height / factor), round(width / factor))
        grid = F.interpolate(grid, size=self.latent_size, mode="bilinear", align_corners=False)[:, 0]
        self.layers += 1
        self.average = grid if self.average is None else self.average + (grid - self.average) / self.layers


class ColumnCaptureProcessor:
    """Wraps a cross-attention processor: output unchanged, selected columns recorded on the side."""

    def __init__(self, inner, recorder: AttentionRecorder):
        self.inner = inner
        self.recorder = recorder

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        output = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        rows = self.recorder.rows
        if rows is not None and encoder_hidden_states is not None:
            tokens = _to_tokens(attn, hidden_states[rows])
            context = encoder_hidden_states[rows]
            if attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
            query = _split_heads(attn.to_q(tokens), attn.heads)
            key = _split_heads(attn.to_k(context), attn.heads)
            bias = mask_bias(attn, attention_mask, key.shape[2], hidden_states.shape[0])
            bias = bias[rows] if bias is not None else None
            probs = attention_probs(attn, query, key, bias)[..., self.recorder.columns]
            self.recorder.add(probs.mean(dim=(1, 3)))
        return output


@dataclass
class SwapState:
    """What the Photoswap processors do at the current step (set by the loop before each UNet call)."""

    self_features: bool = False
    self_maps: bool = False
    cross_maps: bool = False
    concept_rows: slice | None = None
    superclass_rows: slice | None = None
    token_map: Any = None  # (keys, keys) matrix: superclass column -> concept column; None = identity


class PhotoswapProcessor:
    """Attention for all layers that can swap the superclass branch's attention into the concept branch.

    Runs SDPA for every row; when a swap is active it recomputes only the concept rows: self-attention
    features copied, or superclass maps (cross maps re-indexed by ``token_map``) applied to the concept
    branch's own values. Features override maps while both are active, as in the reference.
    """

    def __init__(self, state: SwapState):
        self.state = state

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        import torch.nn.functional as F

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_shape = hidden_states.shape
        hidden_states = _to_tokens(attn, hidden_states)
        batch = hidden_states.shape[0]
        is_cross = encoder_hidden_states is not None
        context = hidden_states if not is_cross else encoder_hidden_states
        if is_cross and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query = _split_heads(attn.to_q(hidden_states), attn.heads)
        key = _split_heads(attn.to_k(context), attn.heads)
        value = _split_heads(attn.to_v(context), attn.heads)
        bias = mask_bias(attn, attention_mask, context.shape[1], batch)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias)
        out = self._swap(attn, is_cross, query, key, value, out, bias)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1]).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if len(input_shape) == 4:
            out = out.transpose(-1, -2).reshape(input_shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _swap(self, attn, is_cross, query, key, value, out, bias=None):
        import torch.nn.functional as F

        state = self.state
        concept, superclass = state.concept_rows, state.superclass_rows
        if is_cross:
            if not state.cross_maps:
                return out
            superclass_bias = bias[superclass] if bias is not None else None
            probs = attention_probs(attn, query[superclass], key[superclass], superclass_bias)  # few keys: cheap
            if state.token_map is not None:
                probs = probs @ state.token_map
                probs = probs / probs.sum(dim=-1, keepdim=True).clamp_min(1e-12)
            swapped = (probs @ value[concept].float()).to(out.dtype)
        elif state.self_features:
            swapped = out[superclass]
        elif state.self_maps:
            # softmax(Q_s K_s^T) V_c is attention with the superclass queries and keys and the concept
            # values, so SDPA computes it without materialising the (queries x queries) map.
            swapped = F.scaled_dot_product_attention(query[superclass], key[superclass], value[concept])
        else:
            return out
        out = out.clone()
        out[concept] = swapped
        return out


def token_map(length: int, concept_span: tuple[int, int], superclass_span: tuple[int, int], device=None):
    """Matrix M with M[superclass position, concept position] aligning the two prompts by template position.

    Positions before the phrase map one to one; each token of the concept phrase ("sks dog") gets the
    mean of the superclass phrase's columns ("dog"); positions after the phrase shift by the length
    difference. Concept positions left without a source get zero and rows are renormalised by the caller.
    """
    import torch

    (start, concept_stop), (superclass_start, superclass_stop) = concept_span, superclass_span
    if start != superclass_start:
        raise ValueError(
            f"token map: expected both phrases to start at the same position, got {start} and {superclass_start}"
        )
    matrix = torch.zeros(length, length, device=device)
    for position in range(start):
        matrix[position, position] = 1.0
    matrix[start:superclass_stop, start:concept_stop] = 1.0 / (superclass_stop - start)
    shift = (concept_stop - start) - (superclass_stop - start)
    for position in range(concept_stop, length):
        source = position - shift
        if 0 <= source < length:
            matrix[source, position] = 1.0
    return matrix


@contextlib.contextmanager
def installed_processors(unet, make_processor):
    """Temporarily replace attention processors: ``make_processor(name, current)`` returns the new one
    (or the current one to keep it). The originals are restored even if the run fails."""
    original = dict(unet.attn_processors)
    unet.set_attn_processor({name: make_processor(name, proc) for name, proc in original.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(original)
