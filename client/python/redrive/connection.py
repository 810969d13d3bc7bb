"""Where and how to reach redrived: a Unix socket (`unix:/path`) or
`host:port`, an optional Broker bearer token (`--broker-auth=token`) and
optional TLS (the daemon's CA, and a client certificate for mTLS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import grpc
import grpc.aio


@dataclass(frozen=True)
class Tls:
    """TLS settings. With no `ca_file` the system's roots are trusted;
    `cert_file` and `key_file` (both or neither) present a client
    certificate; `server_name` overrides the name the daemon's certificate
    must carry (default: the host of the target)."""

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("Tls: cert_file and key_file go together")

        def read(path: Optional[str]) -> Optional[bytes]:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file), private_key=read(self.key_file),
            certificate_chain=read(self.cert_file))


Metadata = Tuple[Tuple[str, str], ...]


class Connection:
    """A target and its credentials; makes channels (sync and asyncio) and
    the call metadata. Thread-safe (immutable)."""

    def __init__(self, target: str, token: Optional[str] = None, tls: Optional[Tls] = None,
                 options: Sequence[Tuple[str, object]] = ()) -> None:
        if not target:
            raise ValueError("Connection: empty target (unix:/path or host:port)")
        if target.startswith("unix:") and tls is not None:
            raise ValueError("Connection: TLS is for host:port targets; Unix sockets are plaintext")
        if target.startswith("/"):
            target = "unix:" + target
        self.target = target
        self.token = token
        self.tls = tls
        opts: List[Tuple[str, object]] = list(options)
        if tls is not None and tls.server_name:
            opts.append(("grpc.ssl_target_name_override", tls.server_name))
        self._options = tuple(opts)

    def metadata(self) -> Metadata:
        if self.token:
            return (("authorization", "Bearer " + self.token),)
        return ()

    def channel(self, extra_options: Sequence[Tuple[str, object]] = ()) -> grpc.Channel:
        opts = self._options + tuple(extra_options)
        if self.tls is not None:
            return grpc.secure_channel(self.target, self.tls.credentials(), opts)
        return grpc.insecure_channel(self.target, opts)

    def aio_channel(self, extra_options: Sequence[Tuple[str, object]] = ()) -> grpc.aio.Channel:
        opts = self._options + tuple(extra_options)
        if self.tls is not None:
            return grpc.aio.secure_channel(self.target, self.tls.credentials(), opts)
        return grpc.aio.insecure_channel(self.target, opts)


def as_connection(target: "str | Connection", token: Optional[str] = None,
                  tls: Optional[Tls] = None) -> Connection:
    if isinstance(target, Connection):
        if token is not None or tls is not None:
            raise ValueError("pass token/tls to the Connection, not beside it")
        return target
    return Connection(target, token=token, tls=tls)
