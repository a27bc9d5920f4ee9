"""The answer table: one row per (answer, question), in method space, as parallel numpy arrays.

For a comparison "A vs B", ``outcome`` is +1 when method A was chosen, -1 when method B was chosen
and 0 for "Can't decide". The screen side is kept in ``left_is_a``. Every answer carries the three
factors the analysis treats as crossed: the ``rater``, the ``subject`` (the personalised concept)
and the ``prompt`` (a template shared across subjects, so subjects and prompts are crossed, not
nested).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

A_WINS, TIE, B_WINS = 1, 0, -1
FACTORS = ("rater", "subject", "prompt")  # the crossed factors of every answer


@dataclass(frozen=True, eq=False)
class AnswerTable:
    """Answers as parallel arrays, one row per (answer, question), outcome in method space.

    Columns: ``comparison`` (comparison id), ``question`` (question id), ``rater`` (rater id),
    ``subject`` (concept id), ``prompt`` (prompt template id), ``pair`` (pair id), ``outcome``
    (+1 A won, 0 tie, -1 B won), ``left_is_a`` (A shown on the left), ``time_ms`` (time for the
    whole pair; NaN if unknown), ``is_gold``, ``is_attention`` (check rows, left out of the win
    rates) and ``check_passed`` (for check rows: answered correctly). Ids are any integers.
    """

    comparison: np.ndarray
    question: np.ndarray
    rater: np.ndarray
    subject: np.ndarray
    prompt: np.ndarray
    pair: np.ndarray
    outcome: np.ndarray
    left_is_a: np.ndarray
    time_ms: np.ndarray
    is_gold: np.ndarray
    is_attention: np.ndarray
    check_passed: np.ndarray

    COLUMNS = (
        "comparison",
        "question",
        "rater",
        "subject",
        "prompt",
        "pair",
        "outcome",
        "left_is_a",
        "time_ms",
        "is_gold",
        "is_attention",
        "check_passed",
    )
    REQUIRED = ("comparison", "question", "rater", "subject", "prompt", "outcome")
    _DTYPES = {
        "comparison": np.int64,
        "question": np.int64,
        "rater": np.int64,
        "subject": np.int64,
        "prompt": np.int64,
        "pair": np.int64,
        "outcome": np.int8,
        "left_is_a": bool,
        "time_ms": np.float64,
        "is_gold": bool,
        "is_attention": bool,
        "check_passed": bool,
    }

    def __post_init__(self) -> None:
        lengths = set()
        for name in self.COLUMNS:
            raw = getattr(self, name)
            array = np.asarray(raw if raw is not None else [], dtype=float if name == "time_ms" else None)
            if array.size and array.dtype == object:
                raise ValueError(f"{name}: expected numbers, got {array[:3].tolist()!r}...")
            if array.ndim != 1:
                raise ValueError(f"{name}: expected a 1-d sequence, got shape {array.shape}")
            array = np.array(array, dtype=self._DTYPES[name])
            array.setflags(write=False)
            object.__setattr__(self, name, array)
            lengths.add(array.size)
        if len(lengths) > 1:
            sizes = {name: getattr(self, name).size for name in self.COLUMNS}
            raise ValueError(f"AnswerTable: expected columns of equal length, got {sizes}")
        bad = ~np.isin(self.outcome, (A_WINS, TIE, B_WINS))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"outcome: expected +1 (A won), 0 (can't decide) or -1 (B won), "
                f"got {int(self.outcome[row])} at row {row}"
            )

    @classmethod
    def from_lists(
        cls,
        *,
        comparison: Sequence[int],
        question: Sequence[int],
        rater: Sequence[int],
        subject: Sequence[int],
        prompt: Sequence[int],
        outcome: Sequence[int],
        pair: Sequence[int] | None = None,
        left_is_a: Sequence[bool] | None = None,
        time_ms: Sequence[float | None] | None = None,
        is_gold: Sequence[bool] | None = None,
        is_attention: Sequence[bool] | None = None,
        check_passed: Sequence[bool] | None = None,
    ) -> AnswerTable:
        """Build from plain lists; optional columns default to: pair = row number,
        A on the left, unknown time, no checks."""
        n = len(outcome)
        return cls(
            comparison=comparison,
            question=question,
            rater=rater,
            subject=subject,
            prompt=prompt,
            pair=np.arange(n) if pair is None else pair,
            outcome=outcome,
            left_is_a=np.ones(n, bool) if left_is_a is None else left_is_a,
            time_ms=np.full(n, np.nan) if time_ms is None else [np.nan if t is None else t for t in time_ms],
            is_gold=np.zeros(n, bool) if is_gold is None else is_gold,
            is_attention=np.zeros(n, bool) if is_attention is None else is_attention,
            check_passed=np.zeros(n, bool) if check_passed is None else [bool(v) for v in check_passed],
        )

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> AnswerTable:
        """Build from tuples such as ``values_list(*AnswerTable.COLUMNS)``; missing optional
        columns get the defaults of `from_lists`."""
        unknown = set(columns) - set(cls.COLUMNS)
        if unknown:
            raise ValueError(f"columns: expected names from {cls.COLUMNS}, got unknown {sorted(unknown)}")
        rows = list(rows)
        data = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
        missing = set(cls.REQUIRED) - set(data)
        if missing:
            raise ValueError(f"columns: missing required {sorted(missing)}")
        return cls.from_lists(**data)

    @classmethod
    def empty(cls) -> AnswerTable:
        return cls.from_lists(comparison=[], question=[], rater=[], subject=[], prompt=[], outcome=[])

    def __len__(self) -> int:
        return int(self.outcome.size)

    def select(self, mask: np.ndarray) -> AnswerTable:
        """The rows where ``mask`` is true."""
        return AnswerTable(**{name: getattr(self, name)[mask] for name in self.COLUMNS})

    def without_raters(self, rater_ids: Iterable[int]) -> AnswerTable:
        return self.select(~np.isin(self.rater, np.fromiter(rater_ids, np.int64)))

    def replace(self, **columns: Any) -> AnswerTable:
        """A copy with some columns replaced (e.g. ``outcome``)."""
        return AnswerTable(**{name: columns.get(name, getattr(self, name)) for name in self.COLUMNS})

    @property
    def is_check(self) -> np.ndarray:
        return self.is_gold | self.is_attention

    @property
    def picked_left(self) -> np.ndarray:
        """Decisive answers that chose the image shown on the left."""
        return ((self.outcome == A_WINS) & self.left_is_a) | ((self.outcome == B_WINS) & ~self.left_is_a)


@dataclass(frozen=True)
class ComparisonSpec:
    """A declared comparison: method A against method B. ``in_family``: part of the Holm family."""

    id: int
    method_a: int
    method_b: int
    label: str = ""
    in_family: bool = True


def codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and each row's index into them."""
    labels, index = np.unique(values, return_inverse=True)
    return labels, index.reshape(-1)
