from django.db import models


class Stock(models.Model):
    item = models.CharField(max_length=100, unique=True)
    quantity = models.IntegerField()


class Order(models.Model):
    item = models.CharField(max_length=100)
    quantity = models.IntegerField()
    status = models.CharField(max_length=20, default="new")
