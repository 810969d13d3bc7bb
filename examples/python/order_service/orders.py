"""The order service's two halves, on the redrive package:

- publish_orders(): what a shop front end does, one PublishBatch of JSON
  orders (with a header and a correlation id per order);
- OrderHandler: what the billing service runs for every order. A good order
  is "charged" and ACKed; an order with a bad quantity raises ValueError, so
  it is retried (attempt 1, 2, 3) and then dead-lettered with that error; an
  order that is not JSON raises Terminate: no retry, straight to the DLQ.
"""

import json
import threading
from typing import Dict, List

import redrive

CHANNEL = "shop.orders"
HANDLER_ID = "order-service-py"
POLICY = redrive.RetryPolicy(max_retries=2, initial_backoff_ms=100, jitter=0.0)

ORDERS = [
    b'{"id": 1, "item": "widget", "quantity": 2}',
    b'{"id": 2, "item": "gadget", "quantity": 0}',
    b'{"id": 3, "item": "gizmo", "quantity": 1}',
    b'not json at all',
    b'{"id": 5, "item": "doohickey", "quantity": -4}',
]


def publish_orders(publisher: redrive.Publisher) -> List[str]:
    batch = [redrive.Outgoing(o, headers={"source": "shop-frontend"},
                              content_type="application/json", correlation_id="order-%d" % n)
             for n, o in enumerate(ORDERS, 1)]
    return publisher.publish_batch(CHANNEL, batch)


class OrderHandler:
    """Thread-safe: the Worker calls it from several threads."""

    def __init__(self, log=print) -> None:
        self._lock = threading.Lock()
        self._log = log
        self.charged: Dict[str, str] = {}        # correlation id -> item
        self.dead_lettered: Dict[str, str] = {}  # correlation id -> error

    def __call__(self, msg: redrive.Message) -> None:
        cid = msg.correlation_id
        try:
            order = json.loads(msg.payload)
        except ValueError:
            self._settle(self.dead_lettered, cid, "not JSON")
            self._log("%s: not JSON, dead-lettered without retry" % cid)
            raise redrive.Terminate("order is not JSON", error_code="BAD_JSON")
        if order["quantity"] <= 0:
            error = "quantity must be positive, got %d" % order["quantity"]
            if msg.attempt == msg.max_attempts:
                self._settle(self.dead_lettered, cid, error)
                self._log("%s: attempt %d/%d failed (%s): dead-lettered"
                          % (cid, msg.attempt, msg.max_attempts, error))
            else:
                self._log("%s: attempt %d/%d failed (%s), will be retried"
                          % (cid, msg.attempt, msg.max_attempts, error))
            raise ValueError(error)
        self._settle(self.charged, cid, "%d x %s" % (order["quantity"], order["item"]))
        self._log("%s: charged %d x %s" % (cid, order["quantity"], order["item"]))

    def _settle(self, into: Dict[str, str], cid: str, what: str) -> None:
        with self._lock:
            into[cid] = what

    def settled(self) -> int:
        with self._lock:
            return len(self.charged) + len(self.dead_lettered)
