"""Seed a complete small study that runs offline: concepts, prompts, methods, images, a study, an admin."""

from django.core.management.base import BaseCommand

from studyapp.demo import reset_admin_password, seed_demo


class Command(BaseCommand):
    help = "Seed a small demo study on the procedural world's shipped models, rated by oracle raters."

    def add_arguments(self, parser):
        parser.add_argument("--prompts", type=int, default=8, help="prompts per concept (default 8)")
        parser.add_argument("--seeds", type=int, default=4, help="seeds per prompt (default 4)")
        parser.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
        parser.add_argument(
            "--simulated-raters",
            type=int,
            default=48,
            help="oracle raters simulated through the assignment engine, so the results page has numbers (default 48)",
        )
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="for the printed links")

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()  # shown as it happens, also when the output is a pipe

    def handle(self, *args, prompts, seeds, steps, simulated_raters, base_url, **options):
        study = seed_demo(prompts, seeds, steps, simulated_raters, say=self._say)
        password = reset_admin_password()
        pairs = study.pairs.count()
        checks = study.pairs.exclude(kind="regular").count()
        self.stdout.write(
            self.style.SUCCESS(f"Demo ready: {pairs} pairs ({checks} gold/attention) in study {study.slug!r}.")
        )
        self.stdout.write(f"Admin:      {base_url}/admin/  (user 'admin', password '{password}')")
        self.stdout.write(f"Rater link: {base_url}/s/{study.open_link_token}/")
        self.stdout.write(f"Results:    {base_url}/studies/{study.pk}/results/")
