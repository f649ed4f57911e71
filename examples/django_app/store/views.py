import json

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from pgwerk.contrib.django import werk
from store.models import Order, Stock
from store.tasks import fulfil_order


class OutOfStock(Exception):
    pass


@csrf_exempt  # an API endpoint for the example; keep CSRF on for browser forms
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    item, quantity = str(body["item"]), int(body["quantity"])
    try:
        with transaction.atomic():
            order = Order.objects.create(item=item, quantity=quantity)
            # Written through Django's connection, inside this transaction.
            job = werk.enqueue(fulfil_order, order_id=order.id, _retry=3)
            taken = Stock.objects.filter(item=item, quantity__gte=quantity).update(
                quantity=F("quantity") - quantity)
            if taken != 1:
                raise OutOfStock(item)  # rolls back the order *and* the job
    except OutOfStock:
        return JsonResponse({"error": f"not enough {item!r} in stock"}, status=409)
    return JsonResponse({"order_id": order.id, "job_id": job.id}, status=201)
