"""Schedule the learner's periodic work in django-q2: embed new images, and retrain
projects that gathered enough new labels. `labeling` cannot call the learner, so the
learner looks for work itself, once a minute."""

from django.db import migrations

SCHEDULES = {
    "labelloop: embed new images": "models_app.tasks.dispatch_embeddings",
    "labelloop: retrain after new labels": "models_app.tasks.retrain_due_projects",
}


def add(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": 1, "repeats": -1}
        )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("models_app", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add, remove)]
