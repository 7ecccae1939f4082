#!/usr/bin/env python3
"""Readiness probes for testing/services/up (stdlib only).

  probe.py tcp  HOST PORT      exit 0 if a TCP connection is accepted
  probe.py http URL            exit 0 if anything answers HTTP (any status)
  probe.py cql  HOST PORT      CQL native protocol v4 OPTIONS + STARTUP, then
                               SELECT release_version FROM system.local;
                               prints the release version, exit 0 on success

Exit status 1 means "not ready (yet)"; the reason goes to stderr.
"""

import socket
import struct
import sys
import urllib.error
import urllib.request

TIMEOUT = 3.0


def probe_tcp(host, port):
    with socket.create_connection((host, int(port)), timeout=TIMEOUT):
        pass
    return ""


def probe_http(url):
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            return str(resp.status)
    except urllib.error.HTTPError as e:  # an HTTP answer, even 4xx/5xx, means it is up
        return str(e.code)


# --- CQL native protocol v4 -------------------------------------------------

OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE = 0x00, 0x01, 0x02, 0x03
OP_OPTIONS, OP_SUPPORTED, OP_QUERY, OP_RESULT = 0x05, 0x06, 0x07, 0x08


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf += chunk
    return buf


def _frame(stream, opcode, body=b""):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def _request(sock, stream, opcode, body=b""):
    sock.sendall(_frame(stream, opcode, body))
    header = _recv_exact(sock, 9)
    version, _flags, _stream, op, length = struct.unpack(">BBhBi", header)
    payload = _recv_exact(sock, length) if length else b""
    if version & 0x7F != 0x04:
        raise RuntimeError("unexpected protocol version 0x%02x" % version)
    if op == OP_ERROR:
        code = struct.unpack(">i", payload[:4])[0]
        (mlen,) = struct.unpack(">H", payload[4:6])
        raise RuntimeError("server error 0x%04x: %s" % (code, payload[6:6 + mlen].decode("utf-8", "replace")))
    return op, payload


def _string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _long_string(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def string(self):
        return self.take(self.short()).decode()

    def bytes(self):
        n = self.int()
        return None if n < 0 else self.take(n)

    def option(self):
        t = self.short()
        if t == 0x0000:  # custom
            self.string()
        elif t in (0x0020, 0x0022):  # list, set
            self.option()
        elif t == 0x0021:  # map
            self.option()
            self.option()
        elif t == 0x0030:  # UDT
            self.string()
            self.string()
            for _ in range(self.short()):
                self.string()
                self.option()
        elif t == 0x0031:  # tuple
            for _ in range(self.short()):
                self.option()
        return t


def probe_cql(host, port):
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        op, _ = _request(sock, 1, OP_OPTIONS)
        if op != OP_SUPPORTED:
            raise RuntimeError("OPTIONS answered with opcode 0x%02x" % op)
        startup = struct.pack(">H", 1) + _string("CQL_VERSION") + _string("3.0.0")
        op, _ = _request(sock, 2, OP_STARTUP, startup)
        if op == OP_AUTHENTICATE:
            return "up (authentication required)"
        if op != OP_READY:
            raise RuntimeError("STARTUP answered with opcode 0x%02x" % op)
        query = _long_string("SELECT release_version FROM system.local") + struct.pack(">HB", 0x0001, 0)
        op, payload = _request(sock, 3, OP_QUERY, query)
        if op != OP_RESULT:
            raise RuntimeError("QUERY answered with opcode 0x%02x" % op)
        r = _Reader(payload)
        if r.int() != 0x0002:
            raise RuntimeError("QUERY did not return rows")
        flags, ncols = r.int(), r.int()
        if flags & 0x0002:  # has_more_pages
            r.bytes()
        if flags & 0x0004:  # no_metadata
            raise RuntimeError("unexpected no_metadata result")
        global_spec = flags & 0x0001
        if global_spec:
            r.string()
            r.string()
        for _ in range(ncols):
            if not global_spec:
                r.string()
                r.string()
            r.string()
            r.option()
        if r.int() < 1:
            raise RuntimeError("system.local returned no rows")
        value = r.bytes()
        return value.decode() if value is not None else "null"


def main(argv):
    if len(argv) < 2 or argv[1] not in ("tcp", "http", "cql"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, args = argv[1], argv[2:]
    try:
        out = {"tcp": probe_tcp, "http": probe_http, "cql": probe_cql}[kind](*args)
    except Exception as e:  # noqa: BLE001 - any failure means "not ready"
        print("%s probe failed: %s" % (kind, e), file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
