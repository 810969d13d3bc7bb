#!/usr/bin/python3
"""A grpcurl stand-in for the README test (grpcurl is not packaged in Debian 12).

It implements the subset of grpcurl the README uses, with grpcurl's own
argument syntax, output and exit codes, and it learns every type ONLY through
the server's reflection service (grpc.reflection.v1alpha.ServerReflection),
exactly as grpcurl does with no -proto/-protoset: a service the server does
not expose by reflection cannot be listed, described or called.

  grpcurl [flags] ADDRESS list [SERVICE]
  grpcurl [flags] ADDRESS describe [SYMBOL]
  grpcurl [flags] ADDRESS SERVICE/METHOD      (unary, server, client, bidi)

Flags (Go flag syntax: -f, --f, -f=v, -f v; flags end at the first
positional argument): -plaintext (required: TLS is not supported), -unix
(ADDRESS is a socket path), -d DATA ('@' = read from stdin; one or several
concatenated JSON objects, sent as each one is complete, so a bidi session
can be fed by a pipe), -H 'name: value' (repeatable; sent on reflection and
RPC calls), -emit-defaults, -keep-proto-names, -max-time S,
-connect-timeout S, -help.

Output: each response as JSON indented by 2 with lowerCamelCase field names
(proto names with -keep-proto-names), default values omitted unless
-emit-defaults, one after another on stdout.

Exit codes (as grpcurl's cmd/grpcurl):
  0        OK
  1        a failure before or around the call: cannot connect, reflection
           does not know the service or symbol ("target server does not
           expose service ...", "Symbol not found: ..."), bad request JSON
  2        usage error (unknown flag, missing or extra arguments)
  64 + c   the RPC ended with gRPC status code c, printed to stderr as
           "ERROR:\n  Code: <Name>\n  Message: <message>"

Needs reflection_pb2 / reflection_pb2_grpc on PYTHONPATH (the build's
python/ directory, target redrive_python_stubs).
"""

import json
import os
import sys

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import json_format
from google.protobuf import message_factory

try:
    import reflection_pb2
    import reflection_pb2_grpc
except ImportError:  # pragma: no cover - setup error
    sys.stderr.write("grpcurl stand-in: reflection_pb2 not found; put the build's python/ "
                     "directory (target redrive_python_stubs) on PYTHONPATH\n")
    sys.exit(1)

PROG = "grpcurl"

# grpc-go's codes.Code.String() names, which grpcurl prints.
CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}

STATUS_CODE_OFFSET = 64

BOOL_FLAGS = {"plaintext", "unix", "emit-defaults", "keep-proto-names", "help", "h"}
VALUE_FLAGS = {"d", "H", "max-time", "connect-timeout"}


class Failure(Exception):
    """grpcurl's fail(err, msg): message on stderr, exit 1 (2 for usage)."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def usage_error(message):
    return Failure("%s\nTry '%s -help' for more details." % (message, PROG), 2)


def parse_args(argv):
    opts = {"plaintext": False, "unix": False, "emit-defaults": False,
            "keep-proto-names": False, "help": False, "d": None, "H": [],
            "max-time": 0.0, "connect-timeout": 10.0}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name = arg.lstrip("-")
        value = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name in BOOL_FLAGS:
            if value is None:
                flag_value = True
            elif value.lower() in ("1", "t", "true"):
                flag_value = True
            elif value.lower() in ("0", "f", "false"):
                flag_value = False
            else:
                raise usage_error("invalid boolean value %r for -%s" % (value, name))
            opts["help" if name == "h" else name] = flag_value
        elif name in VALUE_FLAGS:
            if value is None:
                i += 1
                if i >= len(argv):
                    raise usage_error("flag needs an argument: -%s" % name)
                value = argv[i]
            if name == "H":
                opts["H"].append(value)
            elif name == "d":
                opts["d"] = value
            else:
                try:
                    opts[name] = float(value)
                except ValueError:
                    raise usage_error("invalid value %r for flag -%s" % (value, name))
        else:
            raise usage_error("flag provided but not defined: -%s" % name)
        i += 1
    return opts, argv[i:]


def metadata_from_headers(headers):
    md = []
    for h in headers:
        name, sep, value = h.partition(":")
        if not sep:
            # grpcurl sends a header without a colon with an empty value.
            value = ""
        md.append((name.strip().lower(), value.strip()))
    return md


class Reflection:
    """Descriptors learned from the server, in a pool of their own."""

    def __init__(self, channel, metadata, timeout):
        self.stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        self.metadata = metadata
        self.timeout = timeout
        self.files = {}  # name -> FileDescriptorProto
        self.pool = descriptor_pool.DescriptorPool()
        self.added = set()

    def _ask(self, request):
        try:
            responses = list(self.stub.ServerReflectionInfo(
                iter([request]), metadata=self.metadata, timeout=self.timeout))
        except grpc.RpcError as e:
            raise Failure("server does not support the reflection API: %s"
                          % rpc_error_text(e))
        if len(responses) != 1:
            raise Failure("reflection: expected one response, got %d" % len(responses))
        return responses[0]

    def list_services(self):
        resp = self._ask(reflection_pb2.ServerReflectionRequest(list_services=""))
        if resp.HasField("error_response"):
            raise Failure(resp.error_response.error_message)
        return sorted(s.name for s in resp.list_services_response.service)

    def _load(self, response):
        if response.HasField("error_response"):
            return False
        for raw in response.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.files.setdefault(fdp.name, fdp)
        return True

    def _ensure_deps(self):
        """Fetches dependencies the server did not send along (bounded)."""
        for _ in range(1000):
            missing = [d for f in self.files.values() for d in f.dependency
                       if d not in self.files]
            if not missing:
                return
            resp = self._ask(reflection_pb2.ServerReflectionRequest(
                file_by_filename=missing[0]))
            if not self._load(resp):
                raise Failure("File not found: %s" % missing[0])
        raise Failure("reflection: too many files")

    def _add(self, name, depth=0):
        if name in self.added:
            return
        if depth > 100:
            raise Failure("reflection: import cycle at %s" % name)
        fdp = self.files[name]
        for dep in fdp.dependency:
            self._add(dep, depth + 1)
        self.pool.Add(fdp)
        self.added.add(name)

    def file_for_symbol(self, symbol):
        """Loads the file declaring `symbol`; None when the server does not know it."""
        resp = self._ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        if not self._load(resp):
            return None
        self._ensure_deps()
        for raw in resp.file_descriptor_response.file_descriptor_proto[:1]:
            name = descriptor_pb2.FileDescriptorProto.FromString(raw).name
            for n in list(self.files):
                self._add(n)
            return name
        return None

    def find(self, symbol):
        """(kind, descriptor) of a fully qualified symbol, or raises Symbol not found."""
        if self.file_for_symbol(symbol) is None:
            raise Failure("Symbol not found: %s" % symbol)
        finders = (("a service", self.pool.FindServiceByName),
                   ("a message", self.pool.FindMessageTypeByName),
                   ("an enum", self.pool.FindEnumTypeByName),
                   ("a method", self.pool.FindMethodByName),
                   ("a field", self.pool.FindFieldByName))
        for kind, finder in finders:
            try:
                return kind, finder(symbol)
            except KeyError:
                continue
        raise Failure("Symbol not found: %s" % symbol)

    def message_class(self, descriptor):
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(descriptor)
        return message_factory.MessageFactory(self.pool).GetPrototype(descriptor)


# ---------------------------------------------------------------- describe

SCALAR_NAMES = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}


def field_type(f):
    return f.type_name if f.type_name else SCALAR_NAMES.get(f.type, "?")


def print_enum(e, indent, out):
    out.append("%senum %s {" % (indent, e.name))
    for v in e.value:
        out.append("%s  %s = %d;" % (indent, v.name, v.number))
    out.append("%s}" % indent)


def print_message(m, indent, out):
    out.append("%smessage %s {" % (indent, m.name))
    maps = {n.name: n for n in m.nested_type if n.options.map_entry}
    real_oneofs = {}
    for f in m.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            real_oneofs.setdefault(f.oneof_index, []).append(f)
    printed_oneofs = set()
    for f in m.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            idx = f.oneof_index
            if idx in printed_oneofs:
                continue
            printed_oneofs.add(idx)
            out.append("%s  oneof %s {" % (indent, m.oneof_decl[idx].name))
            for g in real_oneofs[idx]:
                out.append("%s    %s %s = %d;" % (indent, field_type(g), g.name, g.number))
            out.append("%s  }" % indent)
            continue
        entry = maps.get(f.type_name.rsplit(".", 1)[-1]) if f.type_name else None
        if entry is not None and f.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
            k, v = entry.field[0], entry.field[1]
            out.append("%s  map<%s, %s> %s = %d;" % (indent, field_type(k), field_type(v),
                                                     f.name, f.number))
            continue
        label = ""
        if f.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
            label = "repeated "
        elif f.proto3_optional:
            label = "optional "
        out.append("%s  %s%s %s = %d;" % (indent, label, field_type(f), f.name, f.number))
    for n in m.nested_type:
        if not n.options.map_entry:
            print_message(n, indent + "  ", out)
    for e in m.enum_type:
        print_enum(e, indent + "  ", out)
    out.append("%s}" % indent)


def method_line(md, indent):
    return "%srpc %s ( %s%s ) returns ( %s%s );" % (
        indent, md.name, "stream " if md.client_streaming else "", md.input_type,
        "stream " if md.server_streaming else "", md.output_type)


def describe_text(kind, d):
    out = []
    if kind == "a service":
        p = descriptor_pb2.ServiceDescriptorProto()
        d.CopyToProto(p)
        out.append("service %s {" % p.name)
        for md in p.method:
            out.append(method_line(md, "  "))
        out.append("}")
    elif kind == "a message":
        p = descriptor_pb2.DescriptorProto()
        d.CopyToProto(p)
        print_message(p, "", out)
    elif kind == "an enum":
        p = descriptor_pb2.EnumDescriptorProto()
        d.CopyToProto(p)
        print_enum(p, "", out)
    elif kind == "a method":
        p = descriptor_pb2.ServiceDescriptorProto()
        d.containing_service.CopyToProto(p)
        out.extend(method_line(md, "") for md in p.method if md.name == d.name)
    else:
        out.append("%s = %d;" % (d.name, d.number))
    return "\n".join(out)


# ---------------------------------------------------------------- invoke

class JsonStream:
    """Concatenated JSON values from a file descriptor (or a string), each
    yielded as soon as it is complete."""

    def __init__(self, text=None, fd=None):
        self.buf = text or ""
        self.fd = fd
        self.eof = fd is None
        self.decoder = json.JSONDecoder()
        self.count = 0

    def _skip_ws(self):
        self.buf = self.buf.lstrip(" \t\r\n")

    def __iter__(self):
        pending = b""
        while True:
            self._skip_ws()
            if self.buf:
                try:
                    value, end = self.decoder.raw_decode(self.buf)
                except ValueError as e:
                    if self.eof:
                        raise Failure("error getting request data: %s" % e)
                    value = None
                if value is not None:
                    self.buf = self.buf[end:]
                    self.count += 1
                    yield value
                    continue
            if self.eof:
                return
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
                if pending:
                    raise Failure("error getting request data: invalid UTF-8")
                continue
            pending += chunk
            try:
                self.buf += pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError as e:
                if e.end < len(pending) - 4:
                    raise Failure("error getting request data: invalid UTF-8")


def rpc_error_text(e):
    code = e.code() if hasattr(e, "code") else None
    return "rpc error: code = %s desc = %s" % (
        CODE_NAMES.get(code, str(code)), e.details() if hasattr(e, "details") else e)


def print_status_and_exit(e):
    code = e.code()
    sys.stdout.flush()
    sys.stderr.write("ERROR:\n  Code: %s\n  Message: %s\n" % (CODE_NAMES.get(code, code.name),
                                                          e.details() or ""))
    sys.stderr.flush()
    sys.exit(STATUS_CODE_OFFSET + code.value[0])


def invoke(channel, refl, symbol, opts, metadata, timeout):
    sep = symbol.rfind("/")
    if sep < 0:
        sep = symbol.rfind(".")
    if sep <= 0:
        raise Failure('Error invoking method "%s": given method name "%s" is not in expected '
                      'format: \'service/method\' or \'service.method\'' % (symbol, symbol))
    service, method = symbol[:sep], symbol[sep + 1:]
    fail_prefix = 'Error invoking method "%s": ' % symbol
    if refl.file_for_symbol(service) is None:
        raise Failure(fail_prefix + 'target server does not expose service "%s"' % service)
    try:
        sd = refl.pool.FindServiceByName(service)
    except KeyError:
        raise Failure(fail_prefix + 'target server does not expose service "%s"' % service)
    md = sd.methods_by_name.get(method)
    if md is None:
        raise Failure(fail_prefix + 'service "%s" does not include a method named "%s"'
                      % (service, method))
    sdp = descriptor_pb2.ServiceDescriptorProto()
    sd.CopyToProto(sdp)
    mdp = next(m for m in sdp.method if m.name == method)
    request_class = refl.message_class(md.input_type)
    response_class = refl.message_class(md.output_type)

    if opts["d"] == "@":
        stream = JsonStream(fd=sys.stdin.fileno())
    else:
        stream = JsonStream(text=opts["d"] or "")

    def to_message(value):
        msg = request_class()
        try:
            json_format.ParseDict(value, msg)
        except json_format.ParseError as e:
            raise Failure(fail_prefix + "error getting request data: %s" % e)
        return msg

    path = "/%s/%s" % (service, method)
    ser = lambda m: m.SerializeToString()  # noqa: E731
    de = response_class.FromString

    def show(resp):
        d = json_format.MessageToDict(
            resp, including_default_value_fields=opts["emit-defaults"],
            preserving_proto_field_name=opts["keep-proto-names"])
        sys.stdout.write(json.dumps(d, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    if not mdp.client_streaming:
        values = list(stream)
        if len(values) > 1:
            raise Failure(fail_prefix + 'method "%s" is a unary RPC, but request data '
                          'contained more than 1 message' % symbol)
        request = to_message(values[0]) if values else request_class()
        try:
            if mdp.server_streaming:
                call = channel.unary_stream(path, request_serializer=ser,
                                            response_deserializer=de)
                for resp in call(request, metadata=metadata, timeout=timeout):
                    show(resp)
            else:
                call = channel.unary_unary(path, request_serializer=ser,
                                           response_deserializer=de)
                show(call(request, metadata=metadata, timeout=timeout))
        except grpc.RpcError as e:
            print_status_and_exit(e)
        return

    # Client or bidi streaming: requests are sent as stdin delivers them.
    errors = []

    def requests():
        try:
            for value in stream:
                yield to_message(value)
        except Failure as f:
            errors.append(f)

    try:
        if mdp.server_streaming:
            call = channel.stream_stream(path, request_serializer=ser, response_deserializer=de)
            responses = call(requests(), metadata=metadata, timeout=timeout)
            for resp in responses:
                show(resp)
        else:
            call = channel.stream_unary(path, request_serializer=ser, response_deserializer=de)
            show(call(requests(), metadata=metadata, timeout=timeout))
    except grpc.RpcError as e:
        if errors:
            raise errors[0]
        print_status_and_exit(e)
    if errors:
        raise errors[0]


def main(argv):
    opts, args = parse_args(argv)
    if opts["help"]:
        sys.stderr.write(__doc__)
        return 0
    if not opts["plaintext"]:
        raise usage_error("this grpcurl stand-in speaks only -plaintext (the daemon has no TLS)")
    if not args:
        raise usage_error("Too few arguments.")
    target = None
    if args[0] not in ("list", "describe"):
        target, args = args[0], args[1:]
    if not args:
        raise usage_error("Too few arguments.")
    verb = "invoke"
    if args[0] in ("list", "describe"):
        verb, args = args[0], args[1:]
    symbol = None
    if verb == "invoke":
        symbol, args = args[0], args[1:]
    elif args:
        symbol, args = args[0], args[1:]
    if args:
        raise usage_error("Too many arguments.")
    if target is None:
        raise usage_error("No host:port specified, no protoset specified, and no proto "
                          "sources specified.")

    address = "unix:" + target if opts["unix"] else target
    metadata = metadata_from_headers(opts["H"])
    timeout = opts["max-time"] if opts["max-time"] > 0 else None
    channel = grpc.insecure_channel(address)
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=opts["connect-timeout"])
        except grpc.FutureTimeoutError:
            raise Failure('Failed to dial target host "%s": context deadline exceeded' % target)
        refl = Reflection(channel, metadata, timeout)
        if verb == "list":
            if symbol is None:
                names = refl.list_services()
                print("\n".join(names) if names else "(No services)")
            else:
                try:
                    kind, sd = refl.find(symbol)
                except Failure as f:
                    raise Failure('Failed to list methods for service "%s": %s' % (symbol, f))
                if kind != "a service":
                    raise Failure('Failed to list methods for service "%s": Service not found: %s'
                                  % (symbol, symbol))
                for m in sorted(m.full_name for m in sd.methods):
                    print(m)
        elif verb == "describe":
            symbols = [symbol] if symbol else refl.list_services()
            for s in symbols:
                s = s[1:] if s.startswith(".") else s
                try:
                    kind, d = refl.find(s)
                except Failure as f:
                    raise Failure('Failed to resolve symbol "%s": %s' % (s, f))
                print("%s is %s:" % (d.full_name, kind))
                print(describe_text(kind, d))
        else:
            invoke(channel, refl, symbol, opts, metadata, timeout)
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Failure as failure:
        sys.stdout.flush()
        sys.stderr.write("%s\n" % failure)
        sys.exit(failure.code)
    except KeyboardInterrupt:
        sys.exit(130)
