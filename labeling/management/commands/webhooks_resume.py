from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from labeling.services.webhooks import webhook_deliveries_resume


class Command(BaseCommand):
    help = (
        "Ask the worker again for webhook deliveries still pending long after they were "
        "due (their task was lost). Safe to run at any time, as often as wanted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--minutes",
            type=int,
            default=30,
            help="Overdue by more than this many minutes (default 30).",
        )

    def handle(self, *args, minutes: int, **options):
        resumed = webhook_deliveries_resume(stale_after=timedelta(minutes=minutes))
        self.stdout.write(f"{resumed} webhook deliver{'y' if resumed == 1 else 'ies'} resumed.")
