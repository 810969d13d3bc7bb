#!/usr/bin/env python3
"""The order service example in one command, against the daemon that
scripts/run.sh starts (its Unix socket by default):

    python3 examples/python/order_service/run.py [--target unix:/path|host:port]

Starts the billing worker, publishes five orders (two with a bad quantity,
one that is not JSON), waits until every order is charged or dead-lettered,
stops the worker gracefully and prints a summary. REDRIVE_BROKER_TOKEN is
sent as the bearer token when set (a daemon with --broker-auth=token).
Inspect the dead letters with `redrivectl dlq list shop.orders order-service-py`.
"""

import argparse
import os
import sys
import time

try:
    import redrive
except ImportError:  # run from a clone, without `pip install client/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "..", "client", "python"))
    import redrive

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from orders import CHANNEL, HANDLER_ID, ORDERS, POLICY, OrderHandler, publish_orders  # noqa: E402


def main() -> int:
    default = "unix:%s/redrive/redrive.sock" % os.environ.get("XDG_RUNTIME_DIR", "/tmp")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=os.environ.get("REDRIVE_TARGET", default),
                    help="redrived address (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    token = os.environ.get("REDRIVE_BROKER_TOKEN") or None

    handler = OrderHandler(log=lambda line: print(line, flush=True))
    worker = redrive.Worker(args.target, token=token)
    worker.handle(CHANNEL, HANDLER_ID, handler, policy=POLICY, max_in_flight=4)
    worker.start()
    try:
        if not worker.wait_registered(args.timeout):
            print("could not register with redrived at %s" % args.target, file=sys.stderr)
            return 1
        print("publishing %d orders to %s" % (len(ORDERS), CHANNEL), flush=True)
        with redrive.Publisher(args.target, token=token) as publisher:
            publish_orders(publisher)
        deadline = time.monotonic() + args.timeout
        while handler.settled() < len(ORDERS) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop(grace=10.0)
    print("charged: %s" % ", ".join(sorted(handler.charged)))
    print("dead-lettered: %s" % ", ".join(sorted(handler.dead_lettered)))
    return 0 if handler.settled() == len(ORDERS) else 1


if __name__ == "__main__":
    sys.exit(main())
