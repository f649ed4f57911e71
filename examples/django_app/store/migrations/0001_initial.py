from django.db import migrations, models


def stock_up(apps, schema_editor):
    Stock = apps.get_model("store", "Stock")
    Stock.objects.bulk_create([Stock(item="book", quantity=10), Stock(item="lamp", quantity=1)])


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Stock",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("item", models.CharField(max_length=100, unique=True)),
                ("quantity", models.IntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("item", models.CharField(max_length=100)),
                ("quantity", models.IntegerField()),
                ("status", models.CharField(default="new", max_length=20)),
            ],
        ),
        migrations.RunPython(stock_up, migrations.RunPython.noop),
    ]
