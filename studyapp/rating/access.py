"""Blinding: the only way a rater request reaches a row.

Every object a rater can reach is looked up here, by an opaque token (study link, rater, assignment,
reference photo). Method names, run ids and file names never reach a template; the image views
resolve a token to bytes on the server.
"""

from django.http import Http404

from studyapp.models import Assignment, Rater, ReferenceImage, Study


def access_study_link(link_token: str) -> Study:
    study = Study.objects.filter(open_link_token=link_token).first()
    if study is None:
        raise Http404("No study has this link.")
    return study


def access_rater(rater_token: str) -> Rater:
    rater = Rater.objects.select_related("study").filter(token=rater_token).first()
    if rater is None:
        raise Http404("This rating link is not valid.")
    return rater


def access_pair_image(assignment_token: str, side: int):
    """The file shown as image 1 (left) or 2 (right) of one assignment, and the study's display size."""
    assignment = (
        Assignment.objects.select_related("pair__image_a", "pair__image_b", "pair__study")
        .only("left_is_a", "pair__image_a__file", "pair__image_b__file", "pair__study__display_size")
        .filter(token=assignment_token)
        .first()
    )
    if assignment is None or side not in (1, 2):
        raise Http404("No such image.")
    show_a = assignment.left_is_a == (side == 1)
    pair = assignment.pair
    return (pair.image_a if show_a else pair.image_b).file, pair.study.display_size


def access_reference_image(reference_token: str):
    reference = ReferenceImage.objects.only("image").filter(token=reference_token).first()
    if reference is None:
        raise Http404("No such image.")
    return reference.image
