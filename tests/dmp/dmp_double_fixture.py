"""Start the DMP double (`python -m devtools.dmp_double`) for tests: HTTPS with a required client
certificate, a throw-away IGC-Santé-like PKI, and helpers to drive its control API.

    with running_dmp_double(tmp_path) as dmp:
        dmp.add_patient("279035121518989")
        with dmp.client() as http:           # httpx.Client presenting the ORG client certificate
            http.post(dmp.repository_url, content=body, headers={"Content-Type": content_type})

`dmp.signing_cert_pem` / `dmp.signing_key_pem` are the ORG ("cachet") certificate and key to sign the
VIHF with (`dmp.ca_bundle` is what the double trusts for both the TLS client and the VIHF).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from enrs.accounts.pki_testing import Issued, SamplePki, build_test_pki, issue_organisation
from tests.helpers import PYTHON, REPO, clean_env, free_port, port_open, wait_until

STRUCTURE_ID = "1750712184"  # IdNat_Struct of the test structure: "1" + FINESS 750712184
STRUCTURE_NAME = "GCS e-santé (test)"
REPOSITORY_ID = "1.2.250.1.213.1.1.9.999.1"
TEST_INS = "279035121518989"  # ANS test INS (standards.md §10)
TEST_INS_OID = "1.2.250.1.213.1.4.10"


@dataclass(frozen=True)
class Organisation:
    """An ORG certificate (TLS client + VIHF cachet) of one structure, written to disk."""

    structure_id: str
    cert_path: Path
    key_path: Path
    issued: Issued

    @property
    def cert_pem(self) -> bytes:
        return self.issued.cert_pem

    @property
    def key_pem(self) -> bytes:
        return self.issued.key_pem


@dataclass
class DmpDoubleHandle:
    """A running double. URLs, TLS material, and helpers for its `/_control` API."""

    base_url: str
    port: int
    data_dir: Path
    ca_bundle: Path  # trusted by the double (client TLS + VIHF) and by clients (server certificate)
    client_cert: Path
    client_key: Path
    signing_cert: Path  # ORG certificate for the VIHF signature (same ORG as the TLS client here)
    signing_key: Path
    structure_id: str
    repository_id: str
    pki: SamplePki
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_args: Sequence[str] = ()
    organisations: dict[str, Organisation] = field(default_factory=dict)

    # --- material ------------------------------------------------------------------------------
    @property
    def repository_url(self) -> str:
        return f"{self.base_url}/repository"

    @property
    def registry_url(self) -> str:
        return f"{self.base_url}/registry"

    @property
    def signing_cert_pem(self) -> bytes:
        return self.signing_cert.read_bytes()

    @property
    def signing_key_pem(self) -> bytes:
        return self.signing_key.read_bytes()

    def organisation(self, structure_id: str) -> Organisation:
        """The ORG certificate of `structure_id` (issued by the test CA on first use)."""
        if structure_id not in self.organisations:
            issued = issue_organisation(
                issuer=self.pki.issuing,
                now=dt.datetime.now(dt.UTC),
                common_name=f"LPS {structure_id}",
                idnat_struct=structure_id,
                organisation=f"Structure {structure_id}",
            )
            cert_path = self.workdir / f"org-{structure_id}.crt"
            key_path = self.workdir / f"org-{structure_id}.key"
            cert_path.write_bytes(issued.cert_pem)
            key_path.write_bytes(issued.key_pem)
            key_path.chmod(0o600)
            self.organisations[structure_id] = Organisation(structure_id, cert_path, key_path, issued)
        return self.organisations[structure_id]

    def ssl_context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        if client_cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def client(self, *, timeout: float = 10.0, client_cert: bool = True) -> httpx.Client:
        return httpx.Client(verify=self.ssl_context(client_cert=client_cert), timeout=timeout)

    # --- control API ---------------------------------------------------------------------------
    def control(self, method: str, path: str, payload: Any = None) -> Any:
        with self.client() as http:
            response = http.request(
                method,
                f"{self.base_url}/_control/{path}",
                content=None if payload is None else json.dumps(payload),
            )
        if response.status_code >= 400:
            raise RuntimeError(f"contrôle {method} {path} : {response.status_code} {response.text}")
        return response.json()

    def add_patient(
        self, ins: str = TEST_INS, *, oid: str = TEST_INS_OID, status: str = "open"
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.control("POST", "patients", {"ins": ins, "oid": oid, "status": status})
        return result

    def add_fault(self, kind: str, **rule: Any) -> dict[str, Any]:
        """kind: hang (seconds, then=drop|process), http (status), registry_error (error_code,
        code_context), soap_fault, reset; count (default 1); paths / transactions to restrict."""
        result: dict[str, Any] = self.control("POST", "faults", {"kind": kind, **rule})
        return result

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def documents(self, patient: str = "") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.control(
            "GET", "documents" + (f"?patient={patient}" if patient else "")
        )
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.control("GET", "requests")
        return result

    def reset(self) -> None:
        self.control("POST", "reset")

    # --- process -------------------------------------------------------------------------------
    def start(self, *, timeout: float = 20.0) -> None:
        args = [
            PYTHON,
            "-m",
            "devtools.dmp_double",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--ca-bundle",
            str(self.ca_bundle),
            "--tls-cert",
            str(self.workdir / "server.crt"),
            "--tls-key",
            str(self.workdir / "server.key"),
            "--client-ca",
            str(self.ca_bundle),
            "--repository-id",
            self.repository_id,
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, cwd=REPO, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"Le double DMP s'est arrêté : {self.log_path.read_text(errors='replace')}"
                )
            if not port_open(self.port):
                return False
            try:
                with self.client(timeout=2) as http:
                    return http.get(f"{self.base_url}/_control/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, what="DMP double")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port and data directory (state must survive)."""
        self.stop()
        wait_until(lambda: not port_open(self.port), timeout=10, what="DMP double stopped")
        self.start()


@contextmanager
def running_dmp_double(
    workdir: Path,
    *,
    structure_id: str = STRUCTURE_ID,
    repository_id: str = REPOSITORY_ID,
    extra_args: Sequence[str] = (),
    pki: SamplePki | None = None,
) -> Iterator[DmpDoubleHandle]:
    """Write a test PKI under `workdir` (`pki`, or a fresh one), start the double on a free loopback
    port (HTTPS, client certificate required), wait until it answers, yield a handle, stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    pki = pki or build_test_pki()
    files = pki.write(workdir)
    org = issue_organisation(
        issuer=pki.issuing,
        now=dt.datetime.now(dt.UTC),
        common_name="ENRS LPS DMP (test)",
        idnat_struct=structure_id,
        organisation=STRUCTURE_NAME,
    )
    client_cert = workdir / "org.crt"
    client_key = workdir / "org.key"
    client_cert.write_bytes(org.cert_pem)
    client_key.write_bytes(org.key_pem)
    client_key.chmod(0o600)
    port = free_port()
    handle = DmpDoubleHandle(
        base_url=f"https://127.0.0.1:{port}",
        port=port,
        data_dir=workdir / "dmp-data",
        ca_bundle=files["ca-bundle.pem"],
        client_cert=client_cert,
        client_key=client_key,
        signing_cert=client_cert,
        signing_key=client_key,
        structure_id=structure_id,
        repository_id=repository_id,
        pki=pki,
        workdir=workdir,
        log_path=workdir / "dmp-double.log",
        extra_args=tuple(extra_args),
    )
    handle.organisations[structure_id] = Organisation(structure_id, client_cert, client_key, org)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
