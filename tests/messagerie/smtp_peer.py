"""A real SMTP peer on loopback for the relay tests: aiosmtpd, run as a separate process.

Run: ``python tests/messagerie/smtp_peer.py --port P --dir D [--cert C --key K --client-ca CA]``.
With a certificate it offers STARTTLS, requires it before MAIL FROM and requires a client certificate
issued by ``--client-ca`` (mutual TLS as between MSSanté operators). Every accepted message is written
to ``D/messages/<n>.eml`` and a line in ``D/received.jsonl`` (Message-ID, envelope, the client's port —
one port per connection) *before* 250 is answered; every connection is a line in ``D/connections.jsonl``.

Faults on demand through ``D/control.json`` (re-read whenever it changes; see `SmtpPeer.control`):

* ``temp_fail``: ``{"count": N, "code": 450, "stage": "mail"|"rcpt"|"data"}`` — the next N commands of
  that stage are answered with `code` (421 also closes the connection);
* ``reject``: ``{"address": "550 5.1.1 ..."}`` — permanent refusal of these recipients;
* ``down_for``: seconds — stop listening (connection refused) and drop open connections for that long;
* ``close_connections``: true — drop every open connection now (the client's next command fails);
* ``rcpt_delay``: seconds to wait before answering each RCPT (a slow peer, before any data is taken).

The test side (`SmtpPeer`) starts/stops/SIGKILLs the process and reads what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

# --- The peer process ----------------------------------------------------------------------------------


class _State:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.control_path = directory / "control.json"
        self.control_mtime = 0.0
        self.temp_fail: dict[str, Any] = {}
        self.reject: dict[str, str] = {}
        self.down_until = 0.0
        self.close_now = False
        self.rcpt_delay = 0.0
        self.counter = len(list((directory / "messages").glob("*.eml")))

    def reload(self) -> None:
        try:
            mtime = self.control_path.stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return
        if mtime == self.control_mtime:
            return
        self.control_mtime = mtime
        try:
            rules = json.loads(self.control_path.read_text())
        except (OSError, ValueError):
            return
        self.temp_fail = dict(rules.get("temp_fail") or {})
        self.reject = {k.lower(): v for k, v in (rules.get("reject") or {}).items()}
        if rules.get("down_for"):
            self.down_until = time.time() + float(rules["down_for"])
        self.close_now = bool(rules.get("close_connections"))
        self.rcpt_delay = float(rules.get("rcpt_delay") or 0.0)

    def take_temp(self, stage: str) -> str | None:
        rule = self.temp_fail
        if rule.get("stage", "rcpt") != stage or int(rule.get("count", 0)) <= 0:
            return None
        rule["count"] = int(rule["count"]) - 1
        code = int(rule.get("code", 450))
        return (
            f"{code} 4.3.0 Indisponible temporairement (test)" if code < 500 else f"{code} 5.0.0 Refus (test)"
        )


def _append_line(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class _Handler:
    def __init__(self, state: _State) -> None:
        self.state = state

    def _maybe_close(self, server: Any, reply: str) -> str:
        if reply.startswith("421"):
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return reply

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list) -> str:
        self.state.reload()
        reply = self.state.take_temp("mail")
        if reply:
            return self._maybe_close(server, reply)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list) -> str:
        self.state.reload()
        if self.state.rcpt_delay:
            await asyncio.sleep(self.state.rcpt_delay)
        rejected = self.state.reject.get(address.lower())
        if rejected:
            return rejected
        reply = self.state.take_temp("rcpt")
        if reply:
            return self._maybe_close(server, reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.state.reload()
        reply = self.state.take_temp("data")
        if reply:
            return self._maybe_close(server, reply)
        content: bytes = envelope.original_content or envelope.content
        headers = BytesHeaderParser(policy=default_policy).parsebytes(content)
        self.state.counter += 1
        number = self.state.counter
        path = self.state.directory / "messages" / f"{number:06d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        _append_line(
            self.state.directory / "received.jsonl",
            {
                "n": number,
                "message_id": str(headers.get("Message-ID", "")).strip(),
                "mail_from": envelope.mail_from,
                "rcpt_to": list(envelope.rcpt_tos),
                "client_port": session.peer[1] if session.peer else 0,
                "tls": session.ssl is not None,
                "file": path.name,
                "at": time.time(),
            },
        )
        return f"250 2.0.0 Ok: queued as {number}"


async def _serve(args: argparse.Namespace) -> None:
    from aiosmtpd.smtp import SMTP

    directory = Path(args.dir)
    (directory / "messages").mkdir(parents=True, exist_ok=True)
    state = _State(directory)
    handler = _Handler(state)
    context: ssl.SSLContext | None = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=args.client_ca)
        context.load_cert_chain(args.cert, args.key)
        context.verify_mode = ssl.CERT_REQUIRED
    loop = asyncio.get_running_loop()
    protocols: set[Any] = set()

    class PeerSMTP(SMTP):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            is_new = not hasattr(self, "_peer_counted")
            super().connection_made(transport)
            if is_new:  # connection_made runs again after STARTTLS on the same connection
                self._peer_counted = True
                protocols.add(self)
                peer = self.session.peer if self.session is not None else None
                port = peer[1] if isinstance(peer, tuple) else 0
                _append_line(directory / "connections.jsonl", {"client_port": port, "at": time.time()})

        def connection_lost(self, error: Exception | None) -> None:
            protocols.discard(self)
            super().connection_lost(error)

    def factory() -> SMTP:
        return PeerSMTP(
            handler,
            hostname="peer.test",
            tls_context=context,
            require_starttls=context is not None,
            timeout=60,
            loop=loop,
        )

    async def listen() -> asyncio.AbstractServer:
        return await loop.create_server(factory, host=args.host, port=args.port, reuse_address=True)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server: asyncio.AbstractServer | None = await listen()
    (directory / "ready").write_text(str(os.getpid()))
    while not stop.is_set():
        await asyncio.sleep(0.05)
        state.reload()
        now = time.time()
        if state.close_now:
            state.close_now = False
            for protocol in list(protocols):
                if protocol.transport is not None:
                    protocol.transport.abort()
        if state.down_until > now and server is not None:
            server.close()
            server = None
            for protocol in list(protocols):
                if protocol.transport is not None:
                    protocol.transport.abort()
        elif state.down_until <= now and server is None:
            server = await listen()
    if server is not None:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Test SMTP peer (aiosmtpd)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--client-ca", default="")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


# --- The test side -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayPki:
    """Files of a throw-away PKI for mutual TLS between the relay (client) and the peer (server)."""

    ca_bundle: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from a CA the peer does not trust
    rogue_key: Path


def make_relay_pki(directory: Path) -> RelayPki:
    import datetime as dt

    from enrs.accounts import pki_testing

    now = dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    root = pki_testing.make_ca("AC RACINE TEST RELAIS", now=now)
    issuing = pki_testing.make_ca("AC ORGANISATIONS TEST RELAIS", now=now, parent=root)
    rogue_root = pki_testing.make_ca("AC INCONNUE", now=now)
    server = pki_testing.issue_server(
        issuer=issuing, now=now, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    client = pki_testing.issue_organisation(
        issuer=issuing,
        now=now,
        common_name="relais.enrs-demo.mssante.fr",
        idnat_struct="1350000001",
        organisation="GCS ENRS",
    )
    rogue = pki_testing.issue_organisation(
        issuer=rogue_root,
        now=now,
        common_name="intrus.example",
        idnat_struct="1990000001",
        organisation="Intrus",
    )
    files = {
        "ca-bundle.pem": root.cert_pem + issuing.cert_pem,
        "server.crt": server.cert_pem + issuing.cert_pem,
        "server.key": server.key_pem,
        "client.crt": client.cert_pem + issuing.cert_pem,
        "client.key": client.key_pem,
        "rogue.crt": rogue.cert_pem,
        "rogue.key": rogue.key_pem,
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return RelayPki(
        ca_bundle=directory / "ca-bundle.pem",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        rogue_cert=directory / "rogue.crt",
        rogue_key=directory / "rogue.key",
    )


class SmtpPeer:
    """Start/stop the peer process and read what it received."""

    def __init__(self, directory: Path, *, port: int, pki: RelayPki | None) -> None:
        self.directory = directory
        self.port = port
        self.pki = pki
        self.process: subprocess.Popen[bytes] | None = None
        self._seq = 0
        directory.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 20.0) -> None:
        ready = self.directory / "ready"
        ready.unlink(missing_ok=True)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
        ]
        if self.pki is not None:
            command += [
                "--cert",
                str(self.pki.server_cert),
                "--key",
                str(self.pki.server_key),
                "--client-ca",
                str(self.pki.ca_bundle),
            ]
        log = open(self.directory / "peer.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "SMTP peer did not start:\n" + (self.directory / "peer.log").read_text()[-2000:]
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def control(self, **rules: Any) -> None:
        """Replace the fault rules (see the module docstring); takes effect within ~50 ms."""
        self._seq += 1
        path = self.directory / "control.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": self._seq, **rules}))
        os.replace(tmp, path)
        time.sleep(0.15)

    def received(self) -> list[dict[str, Any]]:
        path = self.directory / "received.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def connections(self) -> list[dict[str, Any]]:
        path = self.directory / "connections.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def message_bytes(self, record: dict[str, Any]) -> bytes:
        return (self.directory / "messages" / record["file"]).read_bytes()

    def __enter__(self) -> SmtpPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
