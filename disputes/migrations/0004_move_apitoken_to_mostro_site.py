"""ApiToken is node-wide, not dispute code: it now belongs to mostro_site (state only here; the
table is kept and renamed by mostro_site 0003, so existing databases keep their tokens)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("disputes", "0003_chat")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="ApiToken")]),
    ]
