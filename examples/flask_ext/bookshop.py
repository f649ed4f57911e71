"""A Flask + Flask-SQLAlchemy shop using the pgwerk extension: an order and the job that
fulfils it are written in the same ``db.session`` transaction.

    export DATABASE_URL=postgresql://user@localhost/shop
    flask --app bookshop init-db
    flask --app bookshop run             # the web app
    flask --app bookshop pgwerk-worker   # in another terminal: the worker
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL
from sqlalchemy.orm import Mapped, mapped_column

from pgwerk.contrib.flask import PgWerk

db = SQLAlchemy()
pgwerk = PgWerk(db=db)  # enqueue joins db.session's transaction


class Stock(db.Model):  # type: ignore[name-defined,misc]
    item: Mapped[str] = mapped_column(primary_key=True)
    quantity: Mapped[int]


class Order(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str]
    quantity: Mapped[int]
    status: Mapped[str] = mapped_column(default="new")


class OutOfStock(Exception):
    pass


def fulfil_order(order_id: int) -> str:
    """Runs in ``flask pgwerk-worker``, inside an app context: db.session works."""
    order = db.session.get_one(Order, order_id)
    order.status = "shipped"
    db.session.commit()
    return f"order {order_id} shipped"


def database_uri(url: str) -> URL:
    """A libpq URL (``postgresql://...``) as SQLAlchemy's, with psycopg 3 as the driver."""
    params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    # host and port go in the query, where a socket directory (host=/run/postgresql) fits
    return URL.create("postgresql+psycopg", username=params.pop("user", None),
                      password=params.pop("password", None) or None,
                      database=params.pop("dbname", None), query=params)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_uri(
        os.environ.get("DATABASE_URL", "postgresql://localhost/shop"))
    app.config["PGWERK_OPTIONS"] = {"schema": os.environ.get("PGWERK_SCHEMA", "pgwerk")}
    app.config.update(config or {})
    db.init_app(app)
    pgwerk.init_app(app)

    @app.post("/orders")
    def create_order() -> Any:
        body = request.get_json(force=True)
        item, quantity = str(body["item"]), int(body["quantity"])
        try:
            order = Order(item=item, quantity=quantity)
            db.session.add(order)
            db.session.flush()  # gives the order its id
            job = pgwerk.enqueue(fulfil_order, order_id=order.id, _retry=3)
            stock = db.session.get(Stock, item, with_for_update=True)
            if stock is None or stock.quantity < quantity:
                raise OutOfStock(item)
            stock.quantity -= quantity
            db.session.commit()  # the order and its job become visible together
        except OutOfStock:
            db.session.rollback()  # neither the order nor the job exists
            return jsonify(error=f"not enough {item!r} in stock"), 409
        assert job is not None
        return jsonify(order_id=order.id, job_id=job.id), 201

    @app.get("/orders/<int:order_id>")
    def show_order(order_id: int) -> Any:
        order = db.get_or_404(Order, order_id)
        return jsonify(id=order.id, item=order.item, quantity=order.quantity,
                       status=order.status)

    @app.cli.command("init-db")
    def init_db() -> None:
        """Create the tables and put a few items in stock."""
        db.create_all()
        db.session.merge(Stock(item="book", quantity=10))
        db.session.merge(Stock(item="lamp", quantity=1))
        db.session.commit()
        print("tables created")

    return app
