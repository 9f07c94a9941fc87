from django.db import migrations, models


# A migration keeps its own copy: it must run the same however the project's code changes later.
def drop_column_index(app_label: str, model_name: str, field_name: str) -> migrations.RunPython:
    """Drop the indexes of one column alone (not unique, not part of a wider index), as Django's
    `AlterField(db_index=False)` would, without SQLite's rebuild of the whole table: on
    PostgreSQL that is also the `_like` index of a text column. Reversed by recreating them."""

    def forward(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        column = model._meta.get_field(field_name).column
        for name in schema_editor._constraint_names(model, [column], index=True, unique=False, primary_key=False):
            schema_editor.execute(schema_editor._delete_index_sql(model, name))

    def backward(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        field = model._meta.get_field(field_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))
        like = getattr(schema_editor, "_create_like_index_sql", None)
        if like is not None and (sql := like(model, field)) is not None:
            schema_editor.execute(sql)

    return migrations.RunPython(forward, backward)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_range_bond_parts"),
    ]

    # The index alone goes (a table rebuild on SQLite would copy every row for nothing); the
    # model's state records db_index=False.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("waiting-taker-bond", "Waiting Taker Bond"),
                            ("waiting-maker-bond", "Waiting Maker Bond"),
                            ("waiting-buyer-invoice", "Waiting Buyer Invoice"),
                            ("waiting-payment", "Waiting Payment"),
                            ("active", "Active"),
                            ("fiat-sent", "Fiat Sent"),
                            ("dispute", "Dispute"),
                            ("settled-hold-invoice", "Settled Hold Invoice"),
                            ("success", "Success"),
                            ("canceled", "Canceled"),
                            ("cooperatively-canceled", "Cooperatively Canceled"),
                            ("canceled-by-admin", "Canceled By Admin"),
                            ("expired", "Expired"),
                            ("settled-by-admin", "Settled By Admin"),
                            ("completed-by-admin", "Completed By Admin"),
                            ("in-progress", "In Progress"),
                        ],
                        default="pending",
                        max_length=24,
                    ),
                )
            ],
            database_operations=[drop_column_index("orders", "order", "status")],
        ),
    ]
