"""Publish and PublishBatch: `Publisher` (blocking) and `AsyncPublisher`
(asyncio). Both return the Redis entry ids and raise `RedriveError` (with
the gRPC status code) when the daemon refuses or cannot be reached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from redrive.connection import Connection, Tls, as_connection
from redrive.errors import RedriveError
from redrive.v1 import broker_pb2, broker_pb2_grpc, common_pb2

Payload = Union[bytes, str]
Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


@dataclass
class Outgoing:
    """One message of a batch (the same fields as publish()'s arguments)."""

    payload: Payload
    headers: Headers = None
    content_type: str = ""
    correlation_id: str = ""
    reply_to: str = ""
    traceparent: str = ""
    tracestate: str = ""


def _outgoing(payload: Payload, headers: Headers, content_type: str, correlation_id: str,
              reply_to: str, traceparent: str, tracestate: str) -> broker_pb2.OutgoingMessage:
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    msg = broker_pb2.OutgoingMessage(
        payload=payload, headers=[common_pb2.Header(key=k, value=v) for k, v in pairs],
        content_type=content_type, correlation_id=correlation_id, reply_to=reply_to)
    if traceparent or tracestate:
        msg.trace.traceparent = traceparent
        msg.trace.tracestate = tracestate
    return msg


def _publish(channel: str, payload: Payload, headers: Headers, content_type: str,
             correlation_id: str, reply_to: str, traceparent: str, tracestate: str,
             max_len: int) -> broker_pb2.PublishRequest:
    return broker_pb2.PublishRequest(
        channel=channel, max_len=max_len,
        message=_outgoing(payload, headers, content_type, correlation_id, reply_to, traceparent,
                          tracestate))


def _batch(channel: str, messages: Sequence[Union[Outgoing, Payload]],
           max_len: int) -> broker_pb2.PublishBatchRequest:
    out = []
    for m in messages:
        if isinstance(m, Outgoing):
            out.append(_outgoing(m.payload, m.headers, m.content_type, m.correlation_id,
                                 m.reply_to, m.traceparent, m.tracestate))
        else:
            out.append(_outgoing(m, None, "", "", "", "", ""))
    return broker_pb2.PublishBatchRequest(channel=channel, messages=out, max_len=max_len)


class Publisher:
    """Publishes to redrived over one channel. Thread-safe."""

    def __init__(self, target: Union[str, Connection], *, token: Optional[str] = None,
                 tls: Optional[Tls] = None) -> None:
        self._conn = as_connection(target, token, tls)
        self._channel = self._conn.channel()
        self._stub = broker_pb2_grpc.BrokerStub(self._channel)
        self._md = self._conn.metadata()

    def publish(self, channel: str, payload: Payload, *, headers: Headers = None,
                content_type: str = "", correlation_id: str = "", reply_to: str = "",
                traceparent: str = "", tracestate: str = "", max_len: int = 0,
                timeout: Optional[float] = 30.0) -> str:
        """Appends one message; returns its entry id."""
        req = _publish(channel, payload, headers, content_type, correlation_id, reply_to,
                       traceparent, tracestate, max_len)
        try:
            return self._stub.Publish(req, metadata=self._md, timeout=timeout).entry_id
        except grpc.RpcError as err:
            raise RedriveError.from_rpc_error(err) from None

    def publish_batch(self, channel: str, messages: Sequence[Union[Outgoing, Payload]], *,
                      max_len: int = 0, timeout: Optional[float] = 30.0) -> List[str]:
        """Appends messages all or none; returns their entry ids in order."""
        try:
            resp = self._stub.PublishBatch(_batch(channel, messages, max_len),
                                           metadata=self._md, timeout=timeout)
        except grpc.RpcError as err:
            raise RedriveError.from_rpc_error(err) from None
        return list(resp.entry_ids)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPublisher:
    """Publisher for asyncio (grpc.aio); create and use it inside one loop."""

    def __init__(self, target: Union[str, Connection], *, token: Optional[str] = None,
                 tls: Optional[Tls] = None) -> None:
        self._conn = as_connection(target, token, tls)
        self._channel = self._conn.aio_channel()
        self._stub = broker_pb2_grpc.BrokerStub(self._channel)
        self._md = self._conn.metadata()

    async def publish(self, channel: str, payload: Payload, *, headers: Headers = None,
                      content_type: str = "", correlation_id: str = "", reply_to: str = "",
                      traceparent: str = "", tracestate: str = "", max_len: int = 0,
                      timeout: Optional[float] = 30.0) -> str:
        req = _publish(channel, payload, headers, content_type, correlation_id, reply_to,
                       traceparent, tracestate, max_len)
        try:
            resp = await self._stub.Publish(req, metadata=self._md, timeout=timeout)
        except grpc.RpcError as err:
            raise RedriveError.from_rpc_error(err) from None
        return resp.entry_id

    async def publish_batch(self, channel: str, messages: Sequence[Union[Outgoing, Payload]], *,
                            max_len: int = 0, timeout: Optional[float] = 30.0) -> List[str]:
        try:
            resp = await self._stub.PublishBatch(_batch(channel, messages, max_len),
                                                 metadata=self._md, timeout=timeout)
        except grpc.RpcError as err:
            raise RedriveError.from_rpc_error(err) from None
        return list(resp.entry_ids)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncPublisher":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
