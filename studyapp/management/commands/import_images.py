from django.core.management.base import BaseCommand, CommandError

from studyapp.catalog.importers import MANIFEST_COLUMNS, ImportRefused, import_manifest


class Command(BaseCommand):
    help = (
        "Import images made by other code as an external method's images. The manifest is a CSV or JSON "
        f"list with {', '.join(MANIFEST_COLUMNS)} (optional: prompt_set, seed); file paths are relative "
        "to the manifest."
    )

    def add_arguments(self, parser):
        parser.add_argument("manifest")

    def handle(self, *args, manifest, **options):
        try:
            report = import_manifest(manifest)
        except ImportRefused as exc:
            raise CommandError(f"nothing imported: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Imported {manifest}: {report}"))
