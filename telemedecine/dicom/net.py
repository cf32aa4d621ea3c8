"""DICOM networking for forwarding studies (PS3.7/PS3.8): the C-STORE SCU side and the C-FIND check.

* `split_part10` finds where the dataset starts in a stored file (after the preamble and the File Meta
  group, which are never sent on the wire) and which transfer syntax it is encoded in;
* `plan_contexts` proposes, for each SOP class of a study, one presentation context per original transfer
  syntax (so that the files go out as they are: bit-identical dataset) and one fallback context with the
  uncompressed syntaxes Explicit / Implicit VR Little Endian, plus Study Root C-FIND for the check;
* `StoreAssociation` is one association to the peer: `store()` sends one dataset's encoded bytes as they
  are (never decoded, never re-encoded when the peer accepted the original syntax; an uncompressed file is
  converted between uncompressed syntaxes only when the peer refused its original one), `find_instances()`
  lists the SOP Instance UIDs the peer holds for a series;
* `prefetched` prepares the next items in a few threads (read from the vault, decrypt, de-identify) while
  the association sends the current one.

Network problems (refused connection, association rejected or aborted, timeouts) raise `DicomNetError`:
the transfer is retried later. A status the peer returns for one instance is that instance's outcome.

Pure code: no Django import.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import AE, build_context
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.presentation import PresentationContext

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
UNCOMPRESSED = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE})
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
VERIFICATION = "1.2.840.10008.1.1"
MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are odd numbers 1..255

_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)

T = TypeVar("T")
R = TypeVar("R")


class DicomNetError(Exception):
    """The exchange with the peer failed as a whole (network, association, timeout): retry later."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Part10Error(ValueError):
    pass


# --- Stored files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part10:
    """A stored file split into what the wire needs: the encoded dataset and its transfer syntax."""

    data: bytes
    dataset_offset: int
    transfer_syntax_uid: str

    @property
    def dataset(self) -> memoryview:
        return memoryview(self.data)[self.dataset_offset :]

    @property
    def dataset_size(self) -> int:
        return len(self.data) - self.dataset_offset


def _meta_end(data: bytes, pos: int) -> tuple[int, str]:
    """Walk the File Meta group (explicit VR little endian) from ``pos``: (end, transfer syntax)."""
    transfer_syntax = ""
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                raise Part10Error("File Meta tronqué")
            length = struct.unpack_from("<I", data, pos + 8)[0]
            start = pos + 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            start = pos + 8
        end = start + length
        if end > len(data):
            raise Part10Error("File Meta tronqué")
        if element == 0x0010:
            transfer_syntax = data[start:end].decode("ascii", "replace").strip("\x00 ")
        pos = end
    return pos, transfer_syntax


def split_part10(data: bytes, *, default_transfer_syntax: str = "") -> Part10:
    """Locate the dataset in a stored file: with preamble + ``DICM``, with ``DICM`` only, with a File Meta
    group but no preamble, or a bare dataset (then ``default_transfer_syntax`` says how it is encoded)."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        start = 132
    elif data[:4] == b"DICM":
        start = 4
    elif len(data) >= 8 and struct.unpack_from("<H", data, 0)[0] == 0x0002 and data[4:6].isalpha():
        start = 0
    else:
        if not default_transfer_syntax:
            raise Part10Error("Syntaxe de transfert inconnue pour un fichier sans en-tête DICOM")
        return Part10(data=data, dataset_offset=0, transfer_syntax_uid=default_transfer_syntax)
    end, transfer_syntax = _meta_end(data, start)
    transfer_syntax = transfer_syntax or default_transfer_syntax
    if not transfer_syntax:
        raise Part10Error("Syntaxe de transfert absente de l'en-tête DICOM")
    return Part10(data=data, dataset_offset=end, transfer_syntax_uid=transfer_syntax)


def reencode(part: Part10, transfer_syntax_uid: str) -> bytes:
    """The dataset re-encoded in another uncompressed transfer syntax (used only when the peer refused
    the original one). Raises `Part10Error` for compressed data."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    if part.transfer_syntax_uid not in UNCOMPRESSED or transfer_syntax_uid not in UNCOMPRESSED:
        raise Part10Error("Conversion impossible d'une syntaxe de transfert compressée")
    dataset = _read_bare(bytes(part.dataset), part.transfer_syntax_uid)
    out = DicomBytesIO()
    out.is_little_endian = transfer_syntax_uid != EXPLICIT_BE
    out.is_implicit_VR = transfer_syntax_uid == IMPLICIT_LE
    write_dataset(out, dataset)
    return out.getvalue()


def _read_bare(raw: bytes, transfer_syntax_uid: str) -> Dataset:
    from pydicom.filereader import read_dataset

    return read_dataset(
        BytesIO(raw),
        is_implicit_VR=transfer_syntax_uid == IMPLICIT_LE,
        is_little_endian=transfer_syntax_uid != EXPLICIT_BE,
    )


# --- Presentation contexts ----------------------------------------------------------------------------


def plan_contexts(pairs: Iterable[tuple[str, str]], *, with_find: bool = True) -> list[PresentationContext]:
    """Contexts for a study's (SOP class, transfer syntax) pairs: one per pair with the original syntax
    only, one fallback per SOP class with Explicit then Implicit VR Little Endian, and Study Root C-FIND.
    Raises `Part10Error` when more than 128 contexts would be needed."""
    by_class: dict[str, list[str]] = {}
    for sop_class, syntax in pairs:
        syntaxes = by_class.setdefault(sop_class, [])
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    contexts: list[PresentationContext] = []
    for sop_class, syntaxes in by_class.items():
        for syntax in syntaxes:
            contexts.append(build_context(sop_class, [syntax]))
        contexts.append(build_context(sop_class, [EXPLICIT_LE, IMPLICIT_LE]))
    if with_find:
        contexts.append(build_context(STUDY_ROOT_FIND, [EXPLICIT_LE, IMPLICIT_LE]))
    if len(contexts) > MAX_CONTEXTS:
        raise Part10Error(
            f"Trop de combinaisons classe SOP / syntaxe de transfert ({len(contexts)}) pour une association."
        )
    return contexts


# --- Statuses -----------------------------------------------------------------------------------------


def status_outcome(status: int) -> str:
    """``success`` (0x0000), ``warning`` (0x0001, 0xB000-0xBFFF: stored with coercion), ``resources``
    (0xA700-0xA7FF: out of resources, may work later) or ``failure`` (anything else: 0xA9xx, 0xCxxx…)."""
    if status == 0x0000:
        return "success"
    if status == 0x0001 or 0xB000 <= status <= 0xBFFF:
        return "warning"
    if 0xA700 <= status <= 0xA7FF:
        return "resources"
    return "failure"


def status_code(status: int) -> str:
    return f"0x{status:04X}"


# --- One association ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    called_ae_title: str
    calling_ae_title: str = "ENRS"
    timeout: float = 30.0


@dataclass(frozen=True)
class StoreOutcome:
    status: int
    bytes_sent: int
    converted: bool = False

    @property
    def outcome(self) -> str:
        return status_outcome(self.status)

    @property
    def accepted(self) -> bool:
        return self.outcome in ("success", "warning")


class StoreAssociation:
    """One association to a C-STORE peer, used as a context manager (released on exit, aborted on error)."""

    def __init__(self, peer: Peer, contexts: list[PresentationContext]) -> None:
        self.peer = peer
        self.contexts = contexts
        self.ae = AE(ae_title=peer.calling_ae_title)
        self.ae.acse_timeout = peer.timeout
        self.ae.dimse_timeout = peer.timeout
        self.ae.network_timeout = peer.timeout
        self.ae.connection_timeout = peer.timeout
        self.ae.requested_contexts = contexts
        self.assoc: Any = None
        self._msg_id = 0

    def __enter__(self) -> StoreAssociation:
        # Probe the port first: pynetdicom leaves its socket open when the connection is refused.
        try:
            socket.create_connection((self.peer.host, self.peer.port), timeout=self.peer.timeout).close()
        except OSError as exc:
            raise DicomNetError(
                "connection", f"Connexion au PACS impossible ({self.peer.host}:{self.peer.port}) : {exc}"
            ) from exc
        try:
            assoc = self.ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.called_ae_title)
        except OSError as exc:
            raise DicomNetError("connection", f"Connexion au PACS impossible : {exc}") from exc
        if assoc.is_rejected:
            raise DicomNetError("rejected", "Association refusée par le PACS (AE title non reconnu ?).")
        if not assoc.is_established:
            raise DicomNetError(
                "connection",
                f"Connexion au PACS impossible ({self.peer.host}:{self.peer.port}) "
                "ou association interrompue.",
            )
        self.assoc = assoc
        no_delay(assoc)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assoc = self.assoc
        if assoc is None:
            return
        if assoc.is_established:
            if exc_type is None:
                assoc.release()
            else:
                assoc.abort()
        self.ae.shutdown()

    def _next_id(self) -> int:
        self._msg_id = self._msg_id % 65535 + 1
        return self._msg_id

    def _require_established(self) -> None:
        if self.assoc is None or not self.assoc.is_established:
            raise DicomNetError("aborted", "Association avec le PACS interrompue.")

    def accepted_syntaxes(self, sop_class_uid: str) -> dict[str, int]:
        """{transfer syntax: context id} accepted for this SOP class."""
        return {
            str(cx.transfer_syntax[0]): int(cx.context_id)
            for cx in self.assoc.accepted_contexts
            if cx.abstract_syntax == sop_class_uid
        }

    def store(self, *, part: Part10, sop_class_uid: str, sop_instance_uid: str) -> StoreOutcome:
        """C-STORE one dataset. Returns the peer's status; `DicomNetError` when the association broke;
        `Part10Error` when no accepted context can carry it (the instance is refused, not the transfer)."""
        self._require_established()
        accepted = self.accepted_syntaxes(sop_class_uid)
        payload: bytes | memoryview
        converted = False
        if part.transfer_syntax_uid in accepted:
            context_id = accepted[part.transfer_syntax_uid]
            payload = part.dataset
        else:
            target = next((s for s in (EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE) if s in accepted), None)
            if target is None or part.transfer_syntax_uid not in UNCOMPRESSED:
                raise Part10Error(
                    "Le PACS n'accepte ni la classe SOP ni la syntaxe de transfert de cette image "
                    f"({sop_class_uid}, {part.transfer_syntax_uid})."
                )
            context_id = accepted[target]
            payload = reencode(part, target)
            converted = True
        request = C_STORE()
        request.MessageID = self._next_id()
        request.Priority = 2
        request.AffectedSOPClassUID = sop_class_uid
        request.AffectedSOPInstanceUID = sop_instance_uid
        request.DataSet = BytesIO(payload)
        response = self._exchange(request, context_id)
        status = int(getattr(response, "Status", 0xFFFF))
        return StoreOutcome(status=status, bytes_sent=len(payload), converted=converted)

    def _exchange(self, request: Any, context_id: int) -> Any:
        """Send one DIMSE request and wait for its response, the reactor paused as pynetdicom's own
        ``send_c_store`` does (its private synchronisation, pinned pynetdicom 3.0)."""
        assoc = self.assoc
        assoc._reactor_checkpoint.clear()
        try:
            deadline = time.monotonic() + self.peer.timeout
            while not assoc._is_paused:
                if not assoc.is_established or time.monotonic() > deadline:
                    raise DicomNetError("aborted", "Association avec le PACS interrompue.")
                time.sleep(0.0001)
            assoc.dimse.send_msg(request, context_id)
            _, response = assoc.dimse.get_msg(block=True)
        finally:
            assoc._reactor_checkpoint.set()
        if response is None:
            assoc._handle_no_response()
            raise DicomNetError(
                "aborted", "Pas de réponse du PACS : association interrompue ou délai dépassé."
            )
        return response

    def find_instances(self, *, study_instance_uid: str, series_instance_uid: str) -> set[str]:
        """SOP Instance UIDs the peer holds for one series (Study Root, IMAGE level)."""
        self._require_established()
        if not any(cx.abstract_syntax == STUDY_ROOT_FIND for cx in self.assoc.accepted_contexts):
            raise DicomNetError("find_refused", "Le PACS n'accepte pas la recherche C-FIND (vérification).")
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = study_instance_uid
        query.SeriesInstanceUID = series_instance_uid
        query.SOPInstanceUID = ""
        found: set[str] = set()
        for status, identifier in self.assoc.send_c_find(query, STUDY_ROOT_FIND):
            code = getattr(status, "Status", None)
            if code is None:
                raise DicomNetError("aborted", "Recherche C-FIND interrompue.")
            if code in (0xFF00, 0xFF01):
                if identifier is not None and identifier.get("SOPInstanceUID"):
                    found.add(str(identifier.SOPInstanceUID))
            elif code != 0x0000:
                raise DicomNetError(
                    "find_failed", f"Recherche C-FIND refusée par le PACS ({status_code(code)})."
                )
        return found


def no_delay(assoc: Any) -> None:
    """TCP_NODELAY on the association's socket (pynetdicom leaves Nagle on): without it the small last
    segment of each C-STORE waits for the peer's delayed ACK, tens of milliseconds per instance."""
    raw = getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- Preparing items ahead ----------------------------------------------------------------------------


def prefetched(
    items: Iterable[T], load: Callable[[T], R], *, workers: int
) -> Iterator[tuple[T, R | BaseException]]:
    """Yield ``(item, load(item))`` in order while up to ``workers`` next items are loaded in threads
    (at most ``2 * workers`` results held in memory). A failed load yields its exception."""
    workers = max(1, workers)
    window = 2 * workers
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicom-prefetch") as pool:

        def guarded(item: T) -> R:
            if stop.is_set():
                raise RuntimeError("cancelled")
            return load(item)

        pending: deque[tuple[T, Future[R]]] = deque()
        iterator = iter(items)
        try:
            for item in iterator:
                pending.append((item, pool.submit(guarded, item)))
                if len(pending) >= window:
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
        finally:
            stop.set()
            for _, future in pending:
                future.cancel()


def _result(entry: tuple[Any, Future[Any]]) -> tuple[Any, Any]:
    item, future = entry
    try:
        return item, future.result()
    except Exception as exc:
        return item, exc
