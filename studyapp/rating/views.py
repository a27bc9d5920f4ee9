"""The rater's pages: entry links, consent, instructions, the rating page, answers and blinded images.

Rows are reached only through studyapp.rating.access, so pages and image URLs carry opaque tokens only.
"""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.core.cache import cache
from django.core.signing import BadSignature
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from studyapp.catalog.display import CONTENT_TYPE as DISPLAY_CONTENT_TYPE
from studyapp.catalog.display import display_copy
from studyapp.models import QUESTIONS, Assignment, Rater, ReferenceImage, Study
from studyapp.rating.access import access_pair_image, access_rater, access_reference_image, access_study_link
from studyapp.rating.admission import AdmissionRefused, invited_rater, open_link_rater, prolific_rater
from studyapp.rating.answers import Refused, mark_completed, submit_answer
from studyapp.rating.assignment import claim_leases, release_leases

RATER_COOKIE_SALT = "studyapp.rater"
RATER_COOKIE_AGE = 60 * 60 * 24 * 60
IMAGE_CACHE = "private, max-age=86400, immutable"
REFERENCE_CACHE_SECONDS = 60


# --------------------------------------------------------------------------------------------
# Entry
# --------------------------------------------------------------------------------------------


@require_GET
def entry(request, link_token: str):
    """The study's one public link; Prolific, invite codes and anonymous visitors all arrive here."""
    study = access_study_link(link_token)
    if study.state != Study.State.PUBLISHED:
        return _study_not_open(request, study)
    try:
        rater = _entering_rater(request, study)
    except AdmissionRefused as refusal:
        response = _message(request, refusal.title, refusal.message, refusal.status)
        if refusal.retry_after:
            response["Retry-After"] = str(refusal.retry_after)
        return response
    if rater is None:
        return _message(
            request, "This invite is not valid", "Check the link you were sent, or ask the study team.", 404
        )
    response = redirect("rater_home", rater_token=rater.token)
    response.set_signed_cookie(
        _cookie_name(study),
        rater.token,
        salt=RATER_COOKIE_SALT,
        max_age=RATER_COOKIE_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
    return response


def _entering_rater(request, study: Study) -> Rater | None:
    returning = _rater_from_cookie(request, study)
    if "PROLIFIC_PID" in request.GET:
        return prolific_rater(study, request.GET, returning, _client_address(request))
    if "invite" in request.GET:
        return invited_rater(study, request.GET["invite"])
    return open_link_rater(study, returning, _client_address(request))


def _client_address(request) -> str:
    """The visitor's address; behind the reverse proxy, the one it appended to X-Forwarded-For."""
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR", "")


def _cookie_name(study: Study) -> str:
    return f"rater_{study.pk}"


def _rater_from_cookie(request, study: Study) -> Rater | None:
    try:
        token = request.get_signed_cookie(_cookie_name(study), salt=RATER_COOKIE_SALT, max_age=RATER_COOKIE_AGE)
    except (KeyError, BadSignature):
        return None
    return Rater.objects.filter(study=study, token=token).first()


# --------------------------------------------------------------------------------------------
# The rater's page: one URL that shows whatever step comes next
# --------------------------------------------------------------------------------------------


@require_GET
def rater_home(request, rater_token: str):
    rater = access_rater(rater_token)
    study = rater.study
    if rater.screened_out:
        return _screened_out(request, rater)
    if rater.completed:
        return _completed(request, rater)
    if study.state != Study.State.PUBLISHED:
        return _study_not_open(request, study)
    if not rater.consented:
        return render(request, "studyapp/rating/rate_consent.html", {"rater": rater, "study": study})
    if not rater.instructed:
        return render(request, "studyapp/rating/rate_instructions.html", _instructions_context(rater))
    leases = claim_leases(rater)
    if leases.busy:
        return render(request, "studyapp/rating/rate_wait.html", {"rater": rater}, status=503)
    if leases.current is None:
        return _out_of_pairs(request, rater, leases.answered)
    return render(request, "studyapp/rating/rate.html", _rating_context(rater, leases))


@require_POST
def consent(request, rater_token: str):
    rater = access_rater(rater_token)
    if rater.study.state != Study.State.PUBLISHED:
        return _study_not_open(request, rater.study)
    if request.POST.get("consent") != "yes":
        return _message(
            request,
            "You chose not to take part",
            "Nothing was recorded. You can close this page; if you came from Prolific, please return the study.",
            200,
        )
    Rater.objects.filter(pk=rater.pk, consented__isnull=True).update(consented=timezone.now())
    return redirect("rater_home", rater_token=rater.token)


@require_POST
def start(request, rater_token: str):
    rater = access_rater(rater_token)
    if rater.consented:
        Rater.objects.filter(pk=rater.pk, instructed__isnull=True).update(instructed=timezone.now())
    return redirect("rater_home", rater_token=rater.token)


@require_POST
def answer(request, rater_token: str):
    rater = access_rater(rater_token)
    values = {question: request.POST.get(question) for question in QUESTIONS}
    try:
        submit_answer(rater, request.POST.get("assignment", ""), values, request.POST.get("response_ms"))
    except Refused as refusal:
        return _message(request, "Your answer was not stored", refusal.message, refusal.status, rater=rater)
    return HttpResponseRedirect(reverse("rater_home", kwargs={"rater_token": rater.token}), status=303)


# --------------------------------------------------------------------------------------------
# The same page as JSON: the script swaps the next pair in place instead of loading a page
# --------------------------------------------------------------------------------------------


@require_GET
def next_pair(request, rater_token: str):
    """The pair on screen as JSON, or where the browser should go when there is none to show."""
    return _next_pair_response(access_rater(rater_token))


@require_POST
def answer_json(request, rater_token: str):
    """Store the answer as `answer` does, and reply with the next pair in the same request."""
    rater = access_rater(rater_token)
    values = {question: request.POST.get(question) for question in QUESTIONS}
    try:
        submit_answer(rater, request.POST.get("assignment", ""), values, request.POST.get("response_ms"))
    except Refused as refusal:
        return JsonResponse({"detail": refusal.message}, status=refusal.status)
    return _next_pair_response(rater)


def _next_pair_response(rater: Rater) -> JsonResponse:
    elsewhere = JsonResponse({"state": "page", "url": reverse("rater_home", kwargs={"rater_token": rater.token})})
    ready = rater.consented and rater.instructed and rater.study.state == Study.State.PUBLISHED
    if not ready or rater.completed or rater.screened_out:
        return elsewhere
    leases = claim_leases(rater)
    if leases.current is None:  # finished, out of pairs or all taken for now: the page says which
        return elsewhere
    return JsonResponse(pair_payload(leases))


def _instructions_context(rater: Rater) -> dict:
    study = rater.study
    return {
        "rater": rater,
        "study": study,
        "questions": _question_texts(study),
    }


def _question_texts(study: Study) -> list[str]:
    return [study.question_text, study.question_image, study.question_overall]


def _rating_context(rater: Rater, leases) -> dict:
    texts = dict(zip(QUESTIONS, _question_texts(rater.study), strict=True))
    return {
        "rater": rater,
        "pair": pair_payload(leases),
        "questions": [{"name": name, "text": texts[name]} for name in QUESTIONS],
    }


def pair_payload(leases) -> dict:
    """What the page shows of the pair on screen: opaque tokens and URLs only, never a method or a file."""
    current = leases.current
    pair = current.pair
    upcoming = []
    if leases.upcoming:
        upcoming = [_image_url(leases.upcoming, 1), _image_url(leases.upcoming, 2)]
        if leases.upcoming.pair.concept_id != pair.concept_id:
            upcoming += _reference_urls(leases.upcoming.pair.concept_id)
    return {
        "state": "pair",
        "assignment": current.token,
        "number": leases.answered + 1,
        "total": leases.quota,
        "prompt": pair.prompt.superclass_prompt(pair.concept),
        "images": [_image_url(current, 1), _image_url(current, 2)],
        "references": _reference_urls(pair.concept_id),
        "preload": upcoming,
    }


def _image_url(assignment: Assignment, side: int) -> str:
    return reverse("rater_pair_image", kwargs={"assignment_token": assignment.token, "side": side})


def _reference_urls(concept_id: int) -> list[str]:
    # Read on every page a rater sees, changed only by an admin: a minute of staleness is fine.
    key = f"rater-references:{concept_id}"
    urls = cache.get(key)
    if urls is None:
        tokens = ReferenceImage.objects.filter(concept_id=concept_id).order_by("id").values_list("token", flat=True)
        urls = [reverse("rater_reference_image", kwargs={"reference_token": token}) for token in tokens[:6]]
        cache.set(key, urls, REFERENCE_CACHE_SECONDS)
    return urls


# --------------------------------------------------------------------------------------------
# Endings
# --------------------------------------------------------------------------------------------


def _completed(request, rater: Rater):
    study = rater.study
    if study.completion_url:
        return redirect(study.completion_url)
    return render(request, "studyapp/rating/rate_done.html", {"rater": rater, "code": study.completion_code})


def _out_of_pairs(request, rater: Rater, answered: int):
    """Every pair has its ratings (or the rater has seen them all) before the quota was reached."""
    if answered == 0:
        release_leases(rater)
        return _message(
            request,
            "No pairs left",
            "Every pair in this study already has enough ratings. Thank you; if you came from Prolific, "
            "please return the study.",
            200,
        )
    mark_completed(rater)
    return _completed(request, rater)


def _screened_out(request, rater: Rater):
    if rater.study.screenout_url:
        return redirect(rater.study.screenout_url)
    return _message(
        request,
        "Thank you",
        "Your part in this study has ended because some check questions were not answered as asked.",
        200,
    )


def _study_not_open(request, study: Study):
    if study.state == Study.State.CLOSED:
        return _message(
            request, "This study is closed", "It no longer accepts answers. Thank you for your interest.", 410
        )
    return _message(request, "This study is not open yet", "Please try the link again later.", 404)


def _message(request, title: str, text: str, status: int, rater: Rater | None = None):
    return render(
        request, "studyapp/rating/rate_message.html", {"title": title, "text": text, "rater": rater}, status=status
    )


# --------------------------------------------------------------------------------------------
# Blinded images
# --------------------------------------------------------------------------------------------


@require_GET
def pair_image(request, assignment_token: str, side: int):
    field_file, size = access_pair_image(assignment_token, side)
    try:
        handle = display_copy(field_file, size)
    except FileNotFoundError:
        raise Http404("No such image.") from None
    return _image_stream(handle, DISPLAY_CONTENT_TYPE)


@require_GET
def reference_image(request, reference_token: str):
    return _image_response(access_reference_image(reference_token))


def _image_response(field_file):
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    try:
        handle = field_file.open("rb")
    except FileNotFoundError:
        raise Http404("No such image.") from None
    return _image_stream(handle, content_type)


def _image_stream(handle, content_type: str):
    response = FileResponse(handle, content_type=content_type)
    response.headers.pop("Content-Disposition", None)  # it would carry the stored file name
    response["Cache-Control"] = IMAGE_CACHE
    return response
