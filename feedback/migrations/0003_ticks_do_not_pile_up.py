"""The review-scan schedule becomes a one-shot tick armed again by the learner's hook
after each run (models_app.ticks), so a busy worker never finds dozens queued."""

from django.db import migrations

NAMES = ("labelloop: review scan after training",)
HOOK = "models_app.ticks.tick_rearm"


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=NAMES).update(
        schedule_type="O", repeats=1, hook=HOOK
    )


def backward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=NAMES).update(
        schedule_type="I", repeats=-1, hook=None
    )


class Migration(migrations.Migration):
    dependencies = [("feedback", "0002_schedules"), ("models_app", "0006_ticks_do_not_pile_up")]

    operations = [migrations.RunPython(forward, backward)]
