"""The attention processors on a single diffusers Attention module, against explicit formulas."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from generation.attention import AttentionRecorder, ColumnCaptureProcessor, PhotoswapProcessor, SwapState, token_map

CONCEPT, SUPERCLASS = slice(1, 2), slice(3, 4)


@pytest.fixture
def attn():
    """A cross-attention module: 8-wide queries, 6-wide text context."""
    torch.manual_seed(0)
    return Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4).eval()


@pytest.fixture
def self_attn():
    torch.manual_seed(1)
    return Attention(query_dim=8, heads=2, dim_head=4).eval()


def explicit(attn, queries_from, keys_from, values_from):
    """softmax(Q K^T / sqrt(d)) V with Q, K, V from the given (already projected) token sets, then to_out."""
    heads = attn.heads

    def split(x):
        return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)

    q, k, v = split(queries_from), split(keys_from), split(values_from)
    probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)
    out = (probs @ v).transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
    return attn.to_out[0](out)


def run(attn, processor, hidden, context=None):
    with torch.no_grad():
        return processor(attn, hidden, encoder_hidden_states=context)


def test_no_swap_matches_the_default_processor(self_attn):
    hidden = torch.randn(4, 5, 8)
    expected = run(self_attn, AttnProcessor2_0(), hidden)
    idle = PhotoswapProcessor(SwapState(concept_rows=CONCEPT, superclass_rows=SUPERCLASS))
    torch.testing.assert_close(run(self_attn, idle, hidden), expected)


def test_self_feature_swap_copies_the_superclass_rows(self_attn):
    hidden = torch.randn(4, 5, 8)
    state = SwapState(self_features=True, self_maps=True, concept_rows=CONCEPT, superclass_rows=SUPERCLASS)
    out = run(self_attn, PhotoswapProcessor(state), hidden)
    torch.testing.assert_close(out[1], out[3])
    torch.testing.assert_close(out[[0, 2, 3]], run(self_attn, AttnProcessor2_0(), hidden)[[0, 2, 3]])


def test_self_map_swap_applies_superclass_maps_to_concept_values(self_attn):
    hidden = torch.randn(4, 5, 8)
    state = SwapState(self_maps=True, concept_rows=CONCEPT, superclass_rows=SUPERCLASS)
    out = run(self_attn, PhotoswapProcessor(state), hidden)
    with torch.no_grad():
        query, key, value = self_attn.to_q(hidden[3:4]), self_attn.to_k(hidden[3:4]), self_attn.to_v(hidden[1:2])
        expected = explicit(self_attn, query, key, value)
    torch.testing.assert_close(out[1:2], expected, atol=1e-5, rtol=1e-5)


def test_cross_map_swap_with_token_alignment(attn):
    hidden, context = torch.randn(4, 5, 8), torch.randn(4, 6, 6)
    mapping = token_map(6, (2, 4), (2, 3))
    state = SwapState(cross_maps=True, concept_rows=CONCEPT, superclass_rows=SUPERCLASS, token_map=mapping)
    out = run(attn, PhotoswapProcessor(state), hidden, context)
    with torch.no_grad():
        q = attn.to_q(hidden[3:4]).view(1, 5, 2, 4).transpose(1, 2)
        k = attn.to_k(context[3:4]).view(1, 6, 2, 4).transpose(1, 2)
        v = attn.to_v(context[1:2]).view(1, 6, 2, 4).transpose(1, 2)
        probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1) @ mapping
        probs = probs / probs.sum(-1, keepdim=True)
        expected = attn.to_out[0]((probs @ v).transpose(1, 2).reshape(1, 5, 8))
    torch.testing.assert_close(out[1:2], expected, atol=1e-5, rtol=1e-5)


def test_column_capture_records_the_running_mean_without_changing_output(attn):
    hidden, context = torch.randn(3, 16, 8), torch.randn(3, 6, 6)
    recorder = AttentionRecorder((4, 4))
    recorder.start(slice(2, 3), [1, 2])
    processor = ColumnCaptureProcessor(AttnProcessor2_0(), recorder)
    out = run(attn, processor, hidden, context)
    run(attn, processor, hidden, context)
    torch.testing.assert_close(out, run(attn, AttnProcessor2_0(), hidden, context))
    with torch.no_grad():
        q = attn.to_q(hidden[2:3]).view(1, 16, 2, 4).transpose(1, 2)
        k = attn.to_k(context[2:3]).view(1, 6, 2, 4).transpose(1, 2)
        probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)[..., [1, 2]].mean(dim=(1, 3))
    assert recorder.layers == 2
    torch.testing.assert_close(recorder.average, probs.view(1, 4, 4), atol=1e-6, rtol=1e-5)


def test_token_map_aligns_by_template_position():
    # "a sks dog in the snow" (concept, phrase at 2..4) vs "a dog in the snow" (superclass, phrase at 2..3)
    matrix = token_map(10, (2, 4), (2, 3))
    assert matrix[1, 1] == 1  # "a" -> "a"
    assert matrix[2, 2] == 1 and matrix[2, 3] == 1  # "dog" feeds both "sks" and "dog"
    assert matrix[3, 4] == 1  # superclass "in" (3) -> concept "in" (4)
    assert matrix[:, 4].sum() == 1 and matrix[3, 3] == 0
