"""Give every existing trader its native rating sum: the stored average times its reviews.

Nothing was imported before this migration, so every review so far is native. The stored
`total_rating` values are kept as they are: those recorded with the one-step-lag formula
(before the rating fix, docs/PROTOCOL.md "Reputation and user-info") cannot be recomputed
without the individual votes, which were never stored. mostrod backfills the same way.
"""

from django.db import migrations
from django.db.models import F


def backfill(apps, schema_editor):
    Trader = apps.get_model("orders", "Trader")
    Trader.objects.filter(total_reviews__gt=0).update(native_rating_sum=F("total_rating") * F("total_reviews"))


class Migration(migrations.Migration):
    dependencies = [("orders", "0003_reputation")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
