"""Bring outside data in: a DreamBooth-style folder of reference photos, and images made by other code.

Both imports check every item before writing anything, run in one transaction, remove the files they
wrote if the transaction fails, and skip what is already there, so running one twice adds nothing.
"""

import csv
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from studyapp.catalog.dreambooth import (
    dreambooth_subjects,
    get_or_create_subject,
    load_prompt_sets,
    prompt_set_for_kind,
)
from studyapp.catalog.images import CheckedImage, check_image_bytes
from studyapp.catalog.methods import check_method_name
from studyapp.models import Concept, GeneratedImage, GenerationRun, Method, Prompt, ReferenceImage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
IMPORT_RUN_LABEL = "imported images"


class ImportRefused(Exception):
    """An import refused; the message names the item and the reason."""


@dataclass
class ImportReport:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount

    def __str__(self) -> str:
        return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in self.counts.items())


@contextmanager
def _written_files_removed_on_error() -> Iterator[list[str]]:
    written: list[str] = []
    try:
        yield written
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise


# --- DreamBooth-style dataset -------------------------------------------------------------------


def read_classes_file(folder: Path) -> dict[str, str]:
    """subject -> class word from a prompts_and_classes.txt, if the folder has one."""
    path = folder / "prompts_and_classes.txt"
    if not path.is_file():
        return {}
    match = re.search(r"subject_name,class\n(.*?)\n\s*\n", path.read_text(), re.S)
    if not match:
        raise ImportRefused(f"{path}: expected a 'subject_name,class' table, found none")
    return dict(line.split(",", 1) for line in match.group(1).splitlines() if "," in line)


def import_dreambooth(folder: str | Path) -> ImportReport:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportRefused(f"{folder}: not a folder (expected one subfolder of photos per subject)")
    subjects = _subjects_in(folder)
    planned = {slug: _checked_photos(folder / slug) for slug in subjects}
    report = ImportReport()
    report.add("prompts_added", load_prompt_sets()["prompts"])
    with _written_files_removed_on_error() as written, transaction.atomic():
        for slug, photos in planned.items():
            info = subjects[slug]
            concept, created = get_or_create_subject(slug, info["superclass"], info["kind"])
            report.add("concepts_created" if created else "concepts_existing")
            for name, checked in photos:
                added = _add_reference(concept, name, checked, written)
                report.add("photos_added" if added else "photos_already_there")
    return report


def _subjects_in(folder: Path) -> dict[str, dict]:
    known = dreambooth_subjects()
    classes = read_classes_file(folder)
    subjects = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name in classes:
            word = classes[sub.name].strip()
            subjects[sub.name] = {"superclass": word, "kind": "live" if word in ("cat", "dog") else "object"}
        elif sub.name in known:
            subjects[sub.name] = known[sub.name]
        else:
            raise ImportRefused(
                f"{sub}: unknown subject {sub.name!r}: expected a DreamBooth subject or a line "
                f"'{sub.name},<class word>' in {folder / 'prompts_and_classes.txt'}"
            )
    if not subjects:
        raise ImportRefused(f"{folder}: found no subject folders (expected e.g. {folder}/dog/00.jpg)")
    return subjects


def _checked_photos(subject_folder: Path) -> list[tuple[str, CheckedImage]]:
    files = sorted(p for p in subject_folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImportRefused(f"{subject_folder}: no photos (expected .jpg, .png or .webp files)")
    checked = []
    for path in files:
        try:
            checked.append((path.name, check_image_bytes(path.read_bytes(), name=str(path))))
        except ValidationError as exc:
            raise ImportRefused(exc.messages[0]) from None
    return checked


def add_reference_image(concept: Concept, name: str, checked: CheckedImage) -> ReferenceImage | None:
    """Store one validated photo; None if the concept already has this exact photo."""
    if concept.references.filter(content_hash=checked.content_hash).exists():
        return None
    reference = ReferenceImage(
        concept=concept,
        content_hash=checked.content_hash,
        original_name=name,
        width=checked.width,
        height=checked.height,
    )
    reference.image.save(f"{Path(name).stem}.{checked.extension}", ContentFile(checked.data), save=False)
    reference.save()
    return reference


def _add_reference(concept: Concept, name: str, checked: CheckedImage, written: list[str]) -> bool:
    reference = add_reference_image(concept, name, checked)
    if reference is not None:
        written.append(reference.image.name)
    return reference is not None


# --- Manifest of images made elsewhere ------------------------------------------------------------

MANIFEST_COLUMNS = ("method", "concept", "prompt", "seed_index", "file")


@dataclass(frozen=True)
class ManifestRow:
    number: int
    method: str
    concept: Concept
    prompt: Prompt
    seed_index: int
    seed: int | None
    path: Path
    image: CheckedImage


def read_manifest(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"{path}: no such manifest file")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportRefused(f"{path}: not valid JSON ({exc})") from None
        rows = data.get("images") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ImportRefused(f"{path}: expected a list of objects or {{'images': [...]}}")
        return rows
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = [column for column in MANIFEST_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise ImportRefused(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(MANIFEST_COLUMNS)}"
            )
        return list(reader)
    raise ImportRefused(f"{path}: expected a .csv or .json manifest, got {path.suffix or 'no extension'}")


def import_manifest(path: str | Path) -> ImportReport:
    path = Path(path)
    rows = [_check_row(number, raw, path.parent) for number, raw in enumerate(read_manifest(path), start=1)]
    if not rows:
        raise ImportRefused(f"{path}: the manifest lists no images")
    _refuse_duplicate_slots(rows)
    report = ImportReport()
    with _written_files_removed_on_error() as written, transaction.atomic():
        for row in rows:
            method = _external_method(row, report)
            run = _import_run(method)
            image = _store_generated(run, row, report)
            if image is not None:
                written.append(image.file.name)
    return report


def _check_row(number: int, raw: dict, base: Path) -> ManifestRow:
    def fail(reason: str):
        raise ImportRefused(f"row {number}: {reason}")

    missing = [column for column in MANIFEST_COLUMNS if str(raw.get(column, "")).strip() == ""]
    if missing:
        fail(f"missing {', '.join(missing)}")
    concept = Concept.objects.filter(slug=str(raw["concept"]).strip()).first()
    if concept is None:
        fail(f"unknown concept {raw['concept']!r} (import or create it first)")
    seed_index = _non_negative_int(raw["seed_index"], "seed_index", fail)
    seed = _non_negative_int(raw["seed"], "seed", fail) if str(raw.get("seed", "")).strip() else None
    prompt = _resolve_prompt(str(raw["prompt"]).strip(), concept, str(raw.get("prompt_set", "")).strip(), fail)
    file_path = Path(str(raw["file"]).strip())
    file_path = file_path if file_path.is_absolute() else base / file_path
    if not file_path.is_file():
        fail(f"file {file_path} does not exist")
    try:
        checked = check_image_bytes(file_path.read_bytes(), name=str(file_path))
    except ValidationError as exc:
        fail(exc.messages[0])
    try:
        method = check_method_name(str(raw["method"]).strip())
    except ValidationError as exc:
        fail(f"method {raw['method']!r}: {' '.join(exc.messages)}")
    return ManifestRow(number, method, concept, prompt, seed_index, seed, file_path, checked)


def _non_negative_int(value, name: str, fail) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        fail(f"{name}: expected a whole number >= 0, got {value!r}")
    if number < 0:
        fail(f"{name}: expected a whole number >= 0, got {number}")
    return number


def _resolve_prompt(text: str, concept: Concept, prompt_set: str, fail) -> Prompt:
    """Accept the template itself, or the prompt as rendered with the concept phrase or superclass word."""
    candidates = Prompt.objects.select_related("prompt_set")
    if prompt_set:
        candidates = candidates.filter(prompt_set__slug=prompt_set)
    matches = [p for p in candidates if text in (p.template, p.concept_prompt(concept), p.superclass_prompt(concept))]
    if len(matches) > 1:
        preferred = [p for p in matches if p.prompt_set.slug == prompt_set_for_kind(concept.kind)]
        matches = preferred if len(preferred) == 1 else matches
    if not matches:
        fail(f"no prompt matches {text!r}" + (f" in prompt set {prompt_set!r}" if prompt_set else ""))
    if len(matches) > 1:
        sets = ", ".join(sorted(p.prompt_set.slug for p in matches))
        fail(f"prompt {text!r} is in several prompt sets ({sets}); add a prompt_set column")
    return matches[0]


def _refuse_duplicate_slots(rows: list[ManifestRow]) -> None:
    seen: dict[tuple, int] = {}
    for row in rows:
        key = (row.method, row.concept.pk, row.prompt.pk, row.seed_index)
        if key in seen:
            raise ImportRefused(f"row {row.number}: same method, concept, prompt and seed index as row {seen[key]}")
        seen[key] = row.number


def _external_method(row: ManifestRow, report: ImportReport) -> Method:
    method, created = Method.objects.get_or_create(name=row.method, defaults={"kind": Method.Kind.EXTERNAL})
    if created:
        report.add("methods_created")
    elif method.kind != Method.Kind.EXTERNAL:
        raise ImportRefused(f"row {row.number}: method {row.method!r} is a sampler method, not an external one")
    return method


def _import_run(method: Method) -> GenerationRun:
    run = method.runs.filter(label=IMPORT_RUN_LABEL).first()
    return run or GenerationRun.objects.create(method=method, label=IMPORT_RUN_LABEL, state=GenerationRun.State.DONE)


def _store_generated(run: GenerationRun, row: ManifestRow, report: ImportReport) -> GeneratedImage | None:
    existing = GeneratedImage.objects.filter(
        run=run, concept=row.concept, prompt=row.prompt, seed_index=row.seed_index
    ).first()
    if existing is not None:
        if existing.content_hash != row.image.content_hash:
            raise ImportRefused(
                f"row {row.number}: {row.method}/{row.concept.slug}/prompt {row.prompt.position}/seed "
                f"{row.seed_index} already holds a different image; remove it first to replace it"
            )
        report.add("images_already_there")
        return None
    image = GeneratedImage(
        run=run,
        method=run.method,
        concept=row.concept,
        prompt=row.prompt,
        seed_index=row.seed_index,
        seed=row.seed,
        content_hash=row.image.content_hash,
        width=row.image.width,
        height=row.image.height,
        source_path=str(row.path),
    )
    image.file.save(f"image.{row.image.extension}", ContentFile(row.image.data), save=False)
    image.save()
    report.add("images_added")
    return image
