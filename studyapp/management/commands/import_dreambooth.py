from django.core.management.base import BaseCommand, CommandError

from studyapp.catalog.importers import ImportRefused, import_dreambooth


class Command(BaseCommand):
    help = "Import a folder laid out like the DreamBooth dataset (one subfolder of photos per subject)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="e.g. a clone of google/dreambooth's dataset/ folder")

    def handle(self, *args, path, **options):
        try:
            report = import_dreambooth(path)
        except ImportRefused as exc:
            raise CommandError(f"nothing imported: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Imported {path}: {report}"))
