import secrets

from django.core.management.base import BaseCommand, CommandError

from studyapp.models import Study
from studyapp.rating.admission import create_invites


class Command(BaseCommand):
    help = "Create invite links for a study: one rater per code; each link can be used by one person only."

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's slug")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--count", type=int, help="make this many random codes")
        group.add_argument("--codes", help="comma-separated codes of your own (e.g. e-mail list ids)")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="for the printed links")

    def handle(self, *args, study, count, codes, base_url, **options):
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"no study with slug {study!r}")
        if count is not None and not 1 <= count <= 10000:
            raise CommandError(f"--count: expected 1 to 10000, got {count}")
        wanted = (
            [secrets.token_urlsafe(9) for _ in range(count)]
            if count
            else [c.strip() for c in codes.split(",") if c.strip()]
        )
        if not wanted:
            raise CommandError("--codes: expected at least one code")
        for rater in create_invites(found, wanted):
            self.stdout.write(f"{base_url}/s/{found.open_link_token}/?invite={rater.external_id}")
