"""Re-queue generation batches whose worker vanished; `celery beat` runs the same every minute."""

from dataclasses import asdict

from django.core.management.base import BaseCommand

from studyapp.runs.reconciler import reconcile


class Command(BaseCommand):
    help = "Re-queue batches whose worker stopped sending heartbeats, fail those out of attempts, resend lost messages."

    def add_arguments(self, parser):
        parser.add_argument("--lease", type=float, help="seconds without a heartbeat before a worker counts as gone")
        parser.add_argument(
            "--resend-after", type=float, help="seconds a queued batch waits before its task is sent again"
        )

    def handle(self, *args, lease, resend_after, **options):
        report = reconcile(lease=lease, resend_after=resend_after)
        for key, batch_ids in asdict(report).items():
            self.stdout.write(f"{key}: {len(batch_ids)} batch(es) {batch_ids if batch_ids else ''}".rstrip())
