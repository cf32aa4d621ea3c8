"""A real Orthanc PACS for integration tests and the benchmark (Debian package ``orthanc``).

`OrthancServer` writes a generated configuration in a temporary folder (DICOM and HTTP ports free on this
machine, HTTP bound to loopback only — ``RemoteAccessAllowed: false`` —, storage and index in the folder,
our AE title declared in ``DicomModalities`` so that C-FIND is allowed, the DICOMweb plugin when the
package ``orthanc-dicomweb`` ships it), starts ``Orthanc <config>`` as a subprocess, waits for its REST
``/system``, and can be stopped, killed and restarted on the same ports and storage. A Lua
``ReceivedInstanceFilter`` appends the SOP Instance UID of every instance received (duplicates included)
to ``received.log``: tests count what actually went over the wire.

Orthanc has no option to bind its DICOM port to one address: the DICOM listener uses all interfaces on a
random free port while the test runs (the HTTP API is loopback-only).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port, port_open, wait_until

ORTHANC = "/usr/sbin/Orthanc"
PLUGINS_DIR = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = PLUGINS_DIR / "libOrthancDicomWeb.so"
_installed = False
_apt_updated = False

LUA = """
function ReceivedInstanceFilter(dicom, origin, info)
   local f = io.open("%(log)s", "a")
   if f ~= nil then
      f:write((dicom.SOPInstanceUID or "?") .. "\\n")
      f:close()
   end
   return true
end
"""


def _apt_get(*args: str) -> None:
    """``apt-get`` non-interactive, waiting for the dpkg lock; ``update`` runs once per process."""
    global _apt_updated
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    if not _apt_updated:
        subprocess.run(["apt-get", *lock, "update", "-qq"], check=True, env=env, timeout=900)
        _apt_updated = True
    subprocess.run(["apt-get", *lock, *args], check=True, env=env, timeout=1800)


def ensure_installed() -> None:
    """Install the Debian packages ``orthanc`` and ``orthanc-dicomweb`` when Orthanc is absent."""
    global _installed
    if _installed or Path(ORTHANC).exists():
        _installed = True
        return
    _apt_get("install", "-y", "-qq", "orthanc", "orthanc-dicomweb")
    _installed = True


def ensure_dcmtk() -> str:
    """Path of dcmtk's ``storescu``, installing the Debian package ``dcmtk`` when absent."""
    found = shutil.which("storescu")
    if found:
        return found
    _apt_get("install", "-y", "-qq", "dcmtk")
    found = shutil.which("storescu")
    if not found:
        raise RuntimeError("storescu not found after installing dcmtk")
    return found


class OrthancServer:
    def __init__(
        self,
        *,
        ae_title: str = "ORTHANC",
        modalities: dict[str, tuple[str, str, int]] | None = None,
        dicomweb: bool = True,
        workdir: Path | None = None,
    ) -> None:
        ensure_installed()
        self.ae_title = ae_title
        self.dicom_port = free_port()
        self.http_port = free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="enrs-orthanc-"))
        self.received_log = self.workdir / "received.log"
        self.dicomweb = dicomweb and DICOMWEB_PLUGIN.exists()
        self.modalities = modalities or {"enrs": ("ENRS", "127.0.0.1", 104)}
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = self.workdir / "orthanc.json"
        self._write_config()

    # --- configuration -----------------------------------------------------------------------------

    def _write_config(self) -> None:
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        lua_path = self.workdir / "received.lua"
        lua_path.write_text(LUA % {"log": str(self.received_log)})
        config: dict[str, Any] = {
            "Name": "ENRS-TEST",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "StorageCompression": False,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SslEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": False,
            "DicomCheckModalityHost": False,
            "DicomModalities": {name: list(value) for name, value in self.modalities.items()},
            "UnknownSopClassAccepted": True,
            "OverwriteInstances": False,
            "SaveJobs": False,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 8,
            "DicomThreadsCount": 4,
            "LuaScripts": [str(lua_path)],
            "Plugins": [str(DICOMWEB_PLUGIN)] if self.dicomweb else [],
            "StableAge": 2,
        }
        if self.dicomweb:
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": True}
        self.config_path.write_text(json.dumps(config, indent=2))

    # --- life cycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def start(self, *, timeout: float = 60) -> None:
        log = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115 - kept by the process
        self.process = subprocess.Popen(
            [ORTHANC, str(self.config_path)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.base_url}/system", timeout=1).status_code == 200 and port_open(
                    self.dicom_port
                )
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, what="Orthanc")

    def log_tail(self, size: int = 3000) -> str:
        path = self.workdir / "orthanc.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with ``kill``) and wait."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.process = None
        # The DICOM port must be free again before a restart on the same port.
        deadline = time.monotonic() + 10
        while port_open(self.dicom_port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill(self) -> None:
        self.stop(kill=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- REST helpers ------------------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.get(f"{self.base_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def instance_ids(self) -> list[str]:
        return list(self.get("/instances").json())

    def instance_count(self) -> int:
        return int(self.get("/statistics").json()["CountInstances"])

    def instance_file(self, orthanc_id: str) -> bytes:
        return self.get(f"/instances/{orthanc_id}/file").content

    def sop_instance_uid(self, orthanc_id: str) -> str:
        return str(self.get(f"/instances/{orthanc_id}").json()["MainDicomTags"]["SOPInstanceUID"])

    def received(self) -> list[str]:
        """SOP Instance UIDs received over the wire, in order, duplicates included."""
        if not self.received_log.exists():
            return []
        return [line for line in self.received_log.read_text().splitlines() if line]

    def clear(self) -> None:
        """Delete every stored instance and forget what was received."""
        for patient in self.get("/patients").json():
            httpx.delete(f"{self.base_url}/patients/{patient}", timeout=60).raise_for_status()
        if self.received_log.exists():
            self.received_log.unlink()


@contextmanager
def running_orthanc(**kwargs: Any) -> Iterator[OrthancServer]:
    server = OrthancServer(**kwargs)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
