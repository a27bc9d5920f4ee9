"""Personalized text-to-image sampling: eight samplers over one denoising loop (see docs/generation.md).

Importing the package is free: torch, diffusers and transformers are imported only inside the
functions that need them.
"""
