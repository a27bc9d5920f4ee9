from django.core.management.base import BaseCommand

from studyapp.catalog.dreambooth import load_prompt_sets


class Command(BaseCommand):
    help = "Add the paper's prompt sets (DreamBooth live/object, base, complex); running it again adds nothing."

    def handle(self, *args, **options):
        added = load_prompt_sets()
        self.stdout.write(
            self.style.SUCCESS(f"prompt sets added: {added['prompt_sets']}, prompts added: {added['prompts']}")
        )
