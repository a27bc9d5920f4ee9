"""Where the shipped world models live (committed to the repository)."""

from pathlib import Path

SHIPPED_MODELS = Path(__file__).resolve().parent / "models"
PIPELINE = SHIPPED_MODELS / "pipeline"
CLIP = SHIPPED_MODELS / "clip"
DINO = SHIPPED_MODELS / "dino"
JUDGE = SHIPPED_MODELS / "judge"
SUBJECTS = SHIPPED_MODELS / "subjects"
