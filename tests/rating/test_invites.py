"""Invite links made from the command line lead each invitee to their own rater."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from studyapp.models import Rater
from tests import factories

pytestmark = pytest.mark.django_db


def test_invite_links_are_printed_and_each_code_is_one_rater(capsys):
    study = factories.study_with_images(methods=2, seeds=1)
    call_command("create_invites", study.slug, "--codes", "alice,bob", "--base-url", "https://eval.example.org")
    lines = capsys.readouterr().out.split()
    assert lines == [f"https://eval.example.org/s/{study.open_link_token}/?invite={code}" for code in ("alice", "bob")]
    call_command("create_invites", study.slug, "--codes", "alice")
    assert Rater.objects.filter(study=study, source="invite").count() == 2


def test_random_codes_are_unguessable_and_distinct(capsys):
    study = factories.study_with_images(methods=2, seeds=1)
    call_command("create_invites", study.slug, "--count", "5")
    codes = {line.split("invite=")[1] for line in capsys.readouterr().out.split()}
    assert len(codes) == 5 and all(len(code) >= 12 for code in codes)


def test_unknown_study_is_named():
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("create_invites", "nope", "--count", "1")
