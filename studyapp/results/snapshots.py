"""Snapshots: a study's results frozen with their data hash and settings, so that a paper can cite them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studyapp.models import AnalysisSnapshot, Study
from studyapp.results.analysis import study_results
from studyapp.results.report import results_json
from studyapp.results.table import answer_table, data_hash


def create_snapshot(study: Study, label: str = "", overrides: Mapping[str, Any] | None = None) -> AnalysisSnapshot:
    """Freeze the current results (data hash, settings, numbers) so a paper can cite them."""
    results = study_results(study, overrides)
    frozen = results_json(study, results)
    return AnalysisSnapshot.objects.create(
        study=study,
        label=label,
        data_hash=results.data_hash,
        settings=frozen["settings"],
        results=frozen,
        answer_count=results.n_answers,
    )


def snapshot_matches_current_data(snapshot: AnalysisSnapshot) -> bool:
    """Whether the study's answers are still exactly those the snapshot was computed from."""
    return data_hash(answer_table(snapshot.study)) == snapshot.data_hash
