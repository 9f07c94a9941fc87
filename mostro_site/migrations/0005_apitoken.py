"""ApiToken moves here from disputes with its rows: the state takes over the old table, the
content type (and so its permissions) follows, the table is renamed, then scope and expiry are
added (see `grandfather` for the tokens issued before)."""

import datetime

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

TOKEN_FIELDS = [
    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
    ("name", models.CharField(max_length=80)),
    ("prefix", models.CharField(db_index=True, editable=False, max_length=8)),
    ("key_hash", models.CharField(editable=False, max_length=64, unique=True)),
    ("created_at", models.DateTimeField(auto_now_add=True)),
    ("last_used_at", models.DateTimeField(blank=True, editable=False, null=True)),
    ("revoked_at", models.DateTimeField(blank=True, editable=False, null=True)),
]


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="mostro_site", model="apitoken").exists():
        ContentType.objects.filter(app_label="disputes", model="apitoken").update(app_label="mostro_site")


def move_content_type_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="disputes", model="apitoken").exists():
        ContentType.objects.filter(app_label="mostro_site", model="apitoken").update(app_label="disputes")


def grandfather(apps, schema_editor):
    """Before, an operator could mint a token for someone else and read it. A token the admin log
    shows its own user created keeps working (scope "operator": what it could do before, still
    capped by the user's permissions; 90 days); any other one is revoked now."""
    ApiToken = apps.get_model("mostro_site", "ApiToken")
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    now = timezone.now()
    ApiToken.objects.update(scope="operator", expires_at=now + datetime.timedelta(days=90))
    content_type = ContentType.objects.filter(app_label="mostro_site", model="apitoken").first()
    for token in ApiToken.objects.filter(revoked_at__isnull=True):
        by_owner = content_type is not None and LogEntry.objects.filter(
            content_type=content_type, object_id=str(token.pk), action_flag=1, user_id=token.user_id
        ).exists()
        if not by_owner:
            ApiToken.objects.filter(pk=token.pk).update(revoked_at=now)


class Migration(migrations.Migration):
    dependencies = [
        ("mostro_site", "0004_node_settings_bounds"),
        ("disputes", "0004_move_apitoken_to_mostro_site"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        *TOKEN_FIELDS,
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="api_tokens",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "disputes_apitoken"},
                )
            ]
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
        migrations.AlterModelTable(name="apitoken", table=None),
        migrations.AddField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[
                    ("read", "read: list and view"),
                    ("resolve", "resolve disputes: read + take, settle, refund"),
                    ("operator", "operator: everything the user may do"),
                ],
                default="read",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="apitoken", name="expires_at", field=models.DateTimeField(null=True), preserve_default=False
        ),
        migrations.RunPython(grandfather, migrations.RunPython.noop),
        migrations.AlterField(model_name="apitoken", name="expires_at", field=models.DateTimeField()),
        migrations.AddConstraint(
            model_name="apitoken",
            constraint=models.CheckConstraint(
                condition=models.Q(scope__in=["read", "resolve", "operator"]), name="api_token_scope_valid"
            ),
        ),
    ]
