"""A Flask shop whose order endpoint writes the order and enqueues its fulfilment in the
same database transaction: either both happen or neither does.

    export PGWERK_DSN=postgresql://user@localhost/shop
    flask --app shop init-db
    flask --app shop run            # the web app
    pgwerk-worker shop:werk         # in another terminal: the worker

    curl -X POST localhost:5000/orders -H 'content-type: application/json' \\
         -d '{"item": "book", "quantity": 1}'
"""

from __future__ import annotations

from typing import Any

import psycopg2
from flask import Flask, abort, jsonify, request
from sqlalchemy import Connection, create_engine, text

from pgwerk import Werk

werk = Werk(handlers=["shop"])  # $PGWERK_DSN; workers run only this module's functions
# SQLAlchemy over psycopg2, as many existing WSGI apps have it. pgwerk takes its connection
# (`_conn=conn`) and writes the job in that connection's transaction.
engine = create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(werk.dsn))
app = Flask(__name__)


class OutOfStock(Exception):
    pass


def init_db() -> None:
    """Create the shop's tables and put a few items in stock."""
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE IF NOT EXISTS stock (item text PRIMARY KEY, quantity int NOT NULL)"))
        conn.execute(text(
            "CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, item text NOT NULL, "
            "quantity int NOT NULL, status text NOT NULL DEFAULT 'new')"))
        conn.execute(text("INSERT INTO stock VALUES ('book', 10), ('lamp', 1) "
                          "ON CONFLICT DO NOTHING"))


@app.cli.command("init-db")
def init_db_command() -> None:
    """Create the tables (flask --app shop init-db)."""
    init_db()
    print("tables created")


def place_order(conn: Connection, item: str, quantity: int) -> tuple[int, int]:
    """Insert the order, enqueue its fulfilment, take the items from stock — one
    transaction. Raises OutOfStock (after the job was enqueued) when there are not enough."""
    order_id = conn.execute(
        text("INSERT INTO orders (item, quantity) VALUES (:item, :quantity) RETURNING id"),
        {"item": item, "quantity": quantity}).scalar_one()
    job = werk.enqueue(fulfill_order, order_id=order_id, _conn=conn, _retry=3)
    assert job is not None
    taken = conn.execute(
        text("UPDATE stock SET quantity = quantity - :quantity "
             "WHERE item = :item AND quantity >= :quantity"),
        {"item": item, "quantity": quantity})
    if taken.rowcount != 1:
        raise OutOfStock(item)  # rolls back the order *and* the job
    return order_id, job.id


@app.post("/orders")
def create_order() -> Any:
    body = request.get_json(force=True)
    try:
        with engine.begin() as conn:  # commits on success, rolls back on an exception
            order_id, job_id = place_order(conn, str(body["item"]), int(body["quantity"]))
    except OutOfStock:
        return jsonify(error=f"not enough {body['item']!r} in stock"), 409
    return jsonify(order_id=order_id, job_id=job_id), 201


@app.get("/orders/<int:order_id>")
def show_order(order_id: int) -> Any:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, item, quantity, status FROM orders WHERE id = :id"),
                           {"id": order_id}).mappings().first()
    if row is None:
        abort(404)
    return jsonify(dict(row))


def fulfill_order(order_id: int) -> str:
    """The job: runs in a worker once the order's transaction has committed."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders SET status = 'shipped' WHERE id = :id"),
                     {"id": order_id})
    return f"order {order_id} shipped"
