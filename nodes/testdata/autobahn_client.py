#!/usr/bin/python3
"""RFC 6455 conformance probe of a skynode WebSocket listener.

The peer is an independent implementation: the WebSocket client protocol of
Autobahn|Python (Debian's python3-autobahn, asyncio flavour). Each case runs
on its own connection: it waits for the server's welcome, sends well-formed
or hostile frames with the protocol's raw sendFrame, and checks what the
server answers (messages, pongs, the code of its close frame) against what
RFC 6455 requires. Autobahn checks every frame the server sends (unmasked,
UTF-8 text, valid close code and reason): a violation it finds fails the
case too.

Meanwhile one well-behaved connection stays open and is echoed after every
case: a hostile client must not disturb the others.

Usage: autobahn_client.py [--max-message BYTES] [--expect CASE=CODE ...] URL

--max-message is the listener's message limit (max_frame; 1 MiB by
default): the too-big cases send more than it. --expect overrides the close
code a case expects, to show that the checks can fail.

Prints one JSON line per case (name, what happened, pass) and exits 1 if a
case failed, 2 on a usage error.
"""

import argparse
import asyncio
import json
import logging
import struct
import sys
import urllib.parse

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

TIMEOUT = 10.0  # seconds for any single wait
WELCOME = {"status": "ok", "message": "Welcome to server"}

PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def echo_request(text, id_):
    return json.dumps({"cmd": "echo", "data": {"text": text}, "id": id_}, ensure_ascii=False).encode("utf-8")


class Probe(WebSocketClientProtocol):
    """A client connection that records what the server does."""

    def __init__(self):
        super().__init__()
        loop = asyncio.get_event_loop()
        self.opened = loop.create_future()
        self.closed = loop.create_future()
        self.welcome = None  # the first message
        self.messages = []  # the later ones: (isBinary, payload)
        self.pongs = []
        self.server_close = None  # (code, reason bytes) of the server's close frame
        self.violations = []  # what Autobahn found wrong in the server's frames
        self.clean = None
        self._wake = asyncio.Event()

    # Autobahn's callbacks.

    def onOpen(self):
        if not self.opened.done():
            self.opened.set_result(True)

    def onMessage(self, payload, isBinary):
        if self.welcome is None:
            self.welcome = (isBinary, payload)
        else:
            self.messages.append((isBinary, payload))
        self._wake.set()

    def onPong(self, payload):
        self.pongs.append(payload)
        self._wake.set()

    def onCloseFrame(self, code, reasonRaw):
        if self.server_close is None:
            self.server_close = (code, reasonRaw)
        return super().onCloseFrame(code, reasonRaw)

    def _protocol_violation(self, reason):
        self.violations.append("protocol violation: " + reason)
        return super()._protocol_violation(reason)

    def _invalid_payload(self, reason):
        self.violations.append("invalid payload: " + reason)
        return super()._invalid_payload(reason)

    def onClose(self, wasClean, code, reason):
        self.clean = wasClean
        if not self.opened.done():
            self.opened.set_result(False)
        if not self.closed.done():
            self.closed.set_result((wasClean, code, reason))
        self._wake.set()

    # Helpers for the cases.

    async def wait_for(self, cond, what):
        """Waits until cond() holds; raises TimeoutError naming what."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + TIMEOUT
        while not cond():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("no " + what + " in %.0fs" % TIMEOUT)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                pass
        return True

    async def wait_closed(self):
        return await asyncio.wait_for(asyncio.shield(self.closed), TIMEOUT)

    def frame(self, opcode, payload=b"", fin=True, rsv=0, payload_len=None):
        self.sendFrame(opcode, payload, fin=fin, rsv=rsv, payload_len=payload_len)

    def summary(self):
        out = {}
        if self.server_close is not None:
            code, reason = self.server_close
            out["close_code"] = code
            out["close_reason"] = reason.decode("utf-8", "replace") if reason else ""
        else:
            out["close_code"] = None
        out["clean"] = self.clean
        out["messages"] = [decode(m) for m in self.messages]
        if self.pongs:
            out["pongs"] = [short(p) for p in self.pongs]
        if self.violations:
            out["client_found"] = self.violations
        return out


def short(b):
    """b as text for a report, cut after 32 bytes."""
    t = b[:32].decode("utf-8", "replace")
    return t if len(b) <= 32 else "%s... (%d bytes)" % (t, len(b))


def decode(msg):
    is_binary, payload = msg
    if is_binary:
        return {"binary": payload[:64].hex()}
    try:
        return json.loads(payload.decode("utf-8"))
    except ValueError:
        return {"text": payload[:200].decode("utf-8", "replace")}


class Runner:
    def __init__(self, url, max_message, expect_override):
        self.url = url
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.max_message = max_message
        self.override = expect_override
        self.failed = 0
        self.bystander = None
        self.bystander_id = 1000

    async def connect(self):
        factory = WebSocketClientFactory(self.url)
        factory.protocol = Probe
        # Strict checks of what the server sends; close handshakes short
        # but long enough for loopback.
        factory.setProtocolOptions(
            utf8validateIncoming=True,
            acceptMaskedServerFrames=False,
            maskClientFrames=True,
            applyMask=True,
            failByDrop=True,
            echoCloseCodeReason=False,
            openHandshakeTimeout=TIMEOUT,
            closeHandshakeTimeout=3,
            serverConnectionDropTimeout=3,
            autoPingInterval=0,
            perMessageCompressionOffers=[],
        )
        loop = asyncio.get_event_loop()
        _, proto = await asyncio.wait_for(loop.create_connection(factory, self.host, self.port), TIMEOUT)
        if not await asyncio.wait_for(asyncio.shield(proto.opened), TIMEOUT):
            raise RuntimeError("opening handshake failed: %s" % (proto.wasNotCleanReason,))
        await proto.wait_for(lambda: proto.welcome is not None, "welcome message")
        is_binary, payload = proto.welcome
        if is_binary or not WELCOME.items() <= json.loads(payload).items():
            raise RuntimeError("welcome: %r" % (payload,))
        return proto

    def report(self, name, ok, detail):
        line = {"case": name, "pass": bool(ok)}
        line.update(detail)
        print(json.dumps(line, ensure_ascii=False), flush=True)
        if not ok:
            self.failed += 1

    async def answer(self, proto, text, id_, n):
        """Waits for message n (counting from 0 after the welcome) and
        checks that it is the echo of text for request id_; returns
        (ok, why)."""
        try:
            await proto.wait_for(lambda: len(proto.messages) > n or proto.closed.done(), "echo answer")
        except TimeoutError as e:
            return False, str(e)
        if len(proto.messages) <= n:
            return False, "closed before the answer"
        is_binary, payload = proto.messages[n]
        if is_binary:
            return False, "binary answer"
        got = json.loads(payload.decode("utf-8"))
        if got.get("status") != "ok" or got.get("echo") != text or got.get("id") != id_:
            return False, "answer %r, want echo %r id %r" % (got, text, id_)
        return True, ""

    async def check_bystander(self, after):
        """The well-behaved connection is still open and answered."""
        self.bystander_id += 1
        proto = self.bystander
        if proto.closed.done():
            ok, why = False, "closed"
        else:
            n = len(proto.messages)
            proto.sendMessage(echo_request("still here", self.bystander_id))
            ok, why = await self.answer(proto, "still here", self.bystander_id, n)
        if proto.violations:
            ok, why = False, "client found: %s" % proto.violations
        if not ok:
            self.report("bystander after " + after, False, {"why": why, **proto.summary()})

    async def expect_close(self, name, code, send):
        """A connection that send makes hostile is closed with code (None:
        a close frame without a code; a tuple: any of those)."""
        want = self.override.get(name, code)
        want = want if isinstance(want, tuple) else (want,)
        try:
            proto = await self.connect()
        except Exception as e:  # noqa: BLE001 -- any failure fails the case
            self.report(name, False, {"why": "connect: %s" % e})
            return
        why = ""
        try:
            send(proto)
            await proto.wait_closed()
        except Exception as e:  # noqa: BLE001
            why = "%s: %s" % (type(e).__name__, e)
            proto.transport.abort()
        detail = proto.summary()
        ok = not why and detail["close_code"] in want and detail["clean"] and not proto.violations
        if not ok and not why:
            why = "want close %s after a clean closing handshake, with no violation found" % " or ".join(map(str, want))
        detail["expected"] = want[0] if len(want) == 1 else list(want)
        if why:
            detail["why"] = why
        self.report(name, ok, detail)
        await self.check_bystander(name)

    async def expect_open(self, name, send, check):
        """A connection that sends with send gets what check (a coroutine
        taking the connection, returning (ok, why)) wants, and stays open."""
        try:
            proto = await self.connect()
        except Exception as e:  # noqa: BLE001
            self.report(name, False, {"why": "connect: %s" % e})
            return
        try:
            send(proto)
            ok, why = await check(proto)
        except Exception as e:  # noqa: BLE001
            ok, why = False, "%s: %s" % (type(e).__name__, e)
        if ok and proto.closed.done():
            ok, why = False, "closed"
        if ok and proto.violations:
            ok, why = False, "client found violations"
        if ok and name in self.override:
            ok, why = False, "expected close %d (--expect)" % self.override[name]
        detail = proto.summary()
        if not ok:
            detail["why"] = why
        self.report(name, ok, detail)
        proto.sendClose(1000)
        try:
            await proto.wait_closed()
        except asyncio.TimeoutError:
            proto.transport.abort()
        await self.check_bystander(name)

    async def expect_echo(self, name, text, send, pongs=()):
        """A connection that sends an echo request of text with send is
        answered (and its pings with pongs), then stays open."""

        async def check(proto):
            ok, why = await self.answer(proto, text, 1, 0)
            if ok and pongs:
                await proto.wait_for(lambda: len(proto.pongs) >= len(pongs), "pong")
                if tuple(proto.pongs) != tuple(pongs):
                    ok, why = False, "pongs %r, want %r" % (proto.pongs, list(pongs))
            return ok, why

        await self.expect_open(name, send, check)

    async def run(self):
        self.bystander = await self.connect()
        limit = self.max_message
        req = echo_request("hi", 1)

        # 1. One text frame.
        await self.expect_echo("text frame", "hi", lambda p: p.frame(OP_TEXT, req))

        # 2. Fragmented, with a ping between the fragments.
        def fragmented(p):
            p.frame(OP_TEXT, req[:5], fin=False)
            p.frame(OP_CONT, req[5:12], fin=False)
            p.frame(OP_PING, b"between fragments")
            p.frame(OP_CONT, req[12:20], fin=False)
            p.frame(OP_CONT, b"", fin=False)
            p.frame(OP_CONT, req[20:], fin=True)

        await self.expect_echo("fragmented text with ping", "hi", fragmented, pongs=(b"between fragments",))

        # 2b. A UTF-8 character split between two fragments is valid.
        multi = echo_request("h\u00e9llo \u20ac", 1)
        cut = multi.index("\u20ac".encode()) + 1  # inside the 3-byte euro sign

        def split_char(p):
            p.frame(OP_TEXT, multi[:cut], fin=False)
            p.frame(OP_CONT, multi[cut:], fin=True)

        await self.expect_echo("fragmented text, character split", "h\u00e9llo \u20ac", split_char)

        # 3. Reserved bits, no extension negotiated.
        for bit, rsv in (("RSV1", 4), ("RSV2", 2), ("RSV3", 1)):
            await self.expect_close("reserved bit " + bit, PROTOCOL_ERROR,
                                    lambda p, rsv=rsv: p.frame(OP_TEXT, req, rsv=rsv))
        await self.expect_close("reserved bit on a ping", PROTOCOL_ERROR,
                                lambda p: p.frame(OP_PING, b"x", rsv=4))

        # 4. Invalid UTF-8.
        bad = b'{"cmd":"echo","data":{"text":"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"},"id":1}'
        await self.expect_close("invalid UTF-8", INVALID_PAYLOAD, lambda p: p.frame(OP_TEXT, bad))

        def split_bad(p):
            # Each fragment ends inside a character; only the second makes
            # the message invalid (0xce needs a continuation byte).
            p.frame(OP_TEXT, b'{"cmd":"echo","data":{"text":"\xce', fin=False)
            p.frame(OP_CONT, b'\x41"},"id":1}', fin=True)

        await self.expect_close("invalid UTF-8 across fragments", INVALID_PAYLOAD, split_bad)
        await self.expect_close("truncated UTF-8 at message end", INVALID_PAYLOAD,
                                lambda p: p.frame(OP_TEXT, b'"\xe2\x82'))

        # 5. Control frames: at most 125 bytes, never fragmented.
        await self.expect_close("ping over 125 bytes", PROTOCOL_ERROR, lambda p: p.frame(OP_PING, b"p" * 126))
        await self.expect_close("fragmented ping", PROTOCOL_ERROR, lambda p: p.frame(OP_PING, b"p", fin=False))

        def fragmented_ping_in_message(p):
            p.frame(OP_TEXT, req[:5], fin=False)
            p.frame(OP_PING, b"p", fin=False)
            p.frame(OP_CONT, req[5:], fin=True)

        await self.expect_close("fragmented ping inside a message", PROTOCOL_ERROR, fragmented_ping_in_message)

        async def pong125(p):
            await p.wait_for(lambda: p.pongs or p.closed.done(), "pong")
            return p.pongs == [b"p" * 125], "pongs of %s bytes, want one of 125" % [len(x) for x in p.pongs]

        await self.expect_open("ping of 125 bytes", lambda p: p.frame(OP_PING, b"p" * 125), pong125)

        # 6. Client frames must be masked.
        def unmasked(p):
            p.maskClientFrames = False
            p.frame(OP_TEXT, req)

        await self.expect_close("unmasked frame", PROTOCOL_ERROR, unmasked)

        # 7. The message limit. A message of exactly the limit is read (not
        # JSON, it is answered as a malformed request); one byte more is
        # too big, and so is a message over it in one frame or in fragments
        # each under it.
        async def answered(p):
            await p.wait_for(lambda: p.messages or p.closed.done(), "answer")
            got = decode(p.messages[0]) if p.messages else None
            return isinstance(got, dict) and got.get("status") == "error", "answer %r, want an error" % (got,)

        await self.expect_open("message at the limit", lambda p: p.frame(OP_TEXT, b"a", payload_len=limit), answered)
        await self.expect_close("message one byte over the limit", MESSAGE_TOO_BIG,
                                lambda p: p.frame(OP_TEXT, b"a", payload_len=limit + 1))
        big = 2 * limit
        await self.expect_close("message over the limit", MESSAGE_TOO_BIG,
                                lambda p: p.frame(OP_TEXT, b"a", payload_len=big))

        def fragmented_big(p):
            part = limit // 2
            p.frame(OP_TEXT, b"a", fin=False, payload_len=part)
            for _ in range(2):
                p.frame(OP_CONT, b"a", fin=False, payload_len=part)
            p.frame(OP_CONT, b"a", fin=True, payload_len=part)

        await self.expect_close("fragmented message over the limit", MESSAGE_TOO_BIG, fragmented_big)

        # 8. Fragmentation out of order.
        await self.expect_close("continuation without a message", PROTOCOL_ERROR,
                                lambda p: p.frame(OP_CONT, req, fin=True))

        def text_inside_message(p):
            p.frame(OP_TEXT, req[:5], fin=False)
            p.frame(OP_TEXT, req, fin=True)

        await self.expect_close("text frame inside a fragmented message", PROTOCOL_ERROR, text_inside_message)

        # 9. Reserved opcodes.
        await self.expect_close("reserved data opcode 3", PROTOCOL_ERROR, lambda p: p.frame(3, req))
        await self.expect_close("reserved control opcode 11", PROTOCOL_ERROR, lambda p: p.frame(11, b"x"))

        # 10. A binary message on a text (JSON) connection.
        await self.expect_close("binary on a text connection", UNSUPPORTED_DATA,
                                lambda p: p.frame(OP_BINARY, b"\x81\xa3cmd\xa4ping"))

        # 11. Close frames.
        for code in (999, 1004, 1005, 1006, 1015, 2999, 5000):
            await self.expect_close("close with code %d" % code, PROTOCOL_ERROR,
                                    lambda p, code=code: p.frame(OP_CLOSE, struct.pack("!H", code)))
        await self.expect_close("close with a 1-byte payload", PROTOCOL_ERROR, lambda p: p.frame(OP_CLOSE, b"\x03"))
        await self.expect_close("close with invalid UTF-8 reason", INVALID_PAYLOAD,
                                lambda p: p.frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xce\xba\xed\xa0\x80"))
        await self.expect_close("normal close", 1000, lambda p: p.sendClose(1000, "bye"))
        # RFC 6455 section 5.5.1: the answer to a close frame is a close
        # frame, typically echoing its code: no code, or the code sent.
        await self.expect_close("close without a code", (None, 1000), lambda p: p.sendClose())
        await self.expect_close("close with private code 4000", (4000, 1000), lambda p: p.sendClose(4000))

        # The bystander leaves as it should.
        self.bystander.sendClose(1000)
        try:
            await self.bystander.wait_closed()
        except asyncio.TimeoutError:
            pass
        detail = self.bystander.summary()
        echoes = self.bystander_id - 1000
        ok = (detail["close_code"] == 1000 and detail["clean"] and not self.bystander.violations
              and len(self.bystander.messages) == echoes)
        detail["messages"] = len(detail["messages"])
        detail["echoes"] = echoes
        self.report("bystander echoed after every case, then closed", ok, detail)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--max-message", type=int, default=1 << 20)
    ap.add_argument("--expect", action="append", default=[], metavar="CASE=CODE")
    args = ap.parse_args()
    override = {}
    for e in args.expect:
        name, _, code = e.rpartition("=")
        if not name or not code.isdigit():
            ap.error("--expect %r: want CASE=CODE" % e)
        override[name] = int(code)
    # Autobahn logs the connections it fails at warning level.
    logging.basicConfig(level=logging.ERROR)
    r = Runner(args.url, args.max_message, override)
    try:
        asyncio.run(asyncio.wait_for(r.run(), 600))
    except Exception as e:  # noqa: BLE001
        r.report("run", False, {"why": "%s: %s" % (type(e).__name__, e)})
    sys.exit(1 if r.failed else 0)


if __name__ == "__main__":
    main()
