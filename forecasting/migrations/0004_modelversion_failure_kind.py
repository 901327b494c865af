from django.db import migrations, models
from django.db.models import Q


def failure_kinds_set(apps, schema_editor):
    """Give the failed versions recorded before the field existed their kind, read from what each
    failure used to leave behind (its reason's words, whether it got as far as a trained_at)."""
    ModelVersion = apps.get_model("forecasting", "ModelVersion")
    failed = ModelVersion.objects.filter(status="failed", failure_kind="")
    failed.filter(reason__startswith="interrupted").update(failure_kind="interrupted")
    failed.filter(reason__startswith="storing the artifacts failed").update(failure_kind="storage")
    failed.filter(reason__startswith="training raised").update(failure_kind="training")
    # The old convention: only a too-little-data failure recorded its candles without training
    # (and one with no candle at all recorded none, but says so).
    failed.filter(trained_at__isnull=True).filter(
        Q(data_last__isnull=False) | Q(reason__startswith="too little")
    ).update(failure_kind="too_little_data")
    failed.filter(trained_at__isnull=False).update(failure_kind="invalid")


class Migration(migrations.Migration):
    dependencies = [
        ("forecasting", "0003_modelversion_pinned"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="data_fingerprint",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="failure_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "—"),
                    ("too_little_data", "too little data"),
                    ("training", "training raised an error"),
                    ("invalid", "failed its checks"),
                    ("storage", "storing the artifacts failed"),
                    ("interrupted", "interrupted"),
                ],
                default="",
                max_length=16,
            ),
        ),
        migrations.RunPython(failure_kinds_set, migrations.RunPython.noop),
    ]
