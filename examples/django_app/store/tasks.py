"""The store's jobs. ``manage.py pgwerk_worker`` and ``manage.py pgwerk_cron`` import this
module (``<app>.tasks`` of every installed app), so the schedule below is known to them."""

from pgwerk.contrib.django import werk
from pgwerk.cron import CronScheduler
from store.models import Order, Stock


def fulfil_order(order_id: int) -> str:
    """Runs in the worker, with Django set up: the ORM works as in a view."""
    order = Order.objects.get(id=order_id)
    order.status = "fulfilled"
    order.save(update_fields=["status"])
    return f"order {order_id}: {order.quantity} x {order.item} shipped"


def report_stock() -> dict[str, int]:
    return dict(Stock.objects.values_list("item", "quantity"))


CronScheduler(werk).register(report_stock, interval=3600)
