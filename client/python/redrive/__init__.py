"""redrive: the Python client of redrived.

- `Publisher` / `AsyncPublisher`: Publish and PublishBatch.
- `Worker` (threads) and `AsyncWorker` (asyncio): run handler functions for
  the deliveries of (channel, handler_id) registrations, with ACK/NACK from
  the handler's outcome, lease extension, reconnect and graceful stop.
- `Retry` / `Terminate`: raised by a handler to NACK with a delay or to
  dead-letter at once; `RedriveError`: a failed call, with its gRPC code.
- The generated stubs are in `redrive.v1` (`broker_pb2`, `admin_pb2`, ...).
"""

from redrive.aio import AsyncWorker
from redrive.connection import Connection, Tls
from redrive.errors import RedriveError, Retry, Terminate
from redrive.message import Message
from redrive.policy import DeadLetterPolicy, RetryPolicy
from redrive.publisher import AsyncPublisher, Outgoing, Publisher
from redrive.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AsyncPublisher", "AsyncWorker", "Connection", "DeadLetterPolicy", "Message", "Outgoing",
    "Publisher", "RedriveError", "Retry", "RetryPolicy", "Terminate", "Tls", "Worker",
]
