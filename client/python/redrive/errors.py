"""Exceptions of the redrive client.

A handler raises `Retry` to NACK with an explicit delay, `Terminate` to
dead-letter its message at once; any other exception NACKs with its text.
Calls that fail raise `RedriveError`, which carries the gRPC status code.
"""

from __future__ import annotations

from typing import Optional

import grpc


class RedriveError(Exception):
    """A call to redrived failed; `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__("%s: %s" % (code.name, details))
        self.code = code
        self.details = details

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "RedriveError":
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "")


class Retry(Exception):
    """Raised by a handler: NACK this attempt, redeliver after `delay_ms`
    (instead of the retry policy's backoff; None keeps the backoff). Counts
    as a failed attempt; past max retries the message is dead-lettered."""

    def __init__(self, reason: str = "", delay_ms: Optional[int] = None,
                 error_code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_ms = delay_ms
        self.error_code = error_code


class Terminate(Exception):
    """Raised by a handler: the message failed for good and goes to the
    handler's dead-letter queue at once, with `reason`."""

    def __init__(self, reason: str = "", error_code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_code = error_code
