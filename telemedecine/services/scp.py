"""The DICOM C-STORE SCP (``manage.py dicom_scp``): modalities and PACS of member sites push studies in.

* Association: only calling AE titles of an active `AllowedSender` are accepted (the allow-list is read
  from the database at each association request, so a change applies without restart); any other is
  rejected (A-ASSOCIATE-RJ, "calling AE title not recognised"). Storage SOP classes are accepted in every
  transfer syntax pynetdicom knows (nothing is decoded), plus Verification (C-ECHO).
* C-STORE: the dataset is kept as received — the encoded bytes behind a File Meta built from the
  negotiated context (a valid Part 10 file) — and filed by ``studies.study_ingest_file(source="scp",
  site=<the sender's structure>, sending_ae=…)``. A refused file answers 0xC000 (cannot understand) with
  the reason logged; a database problem answers 0xA700 (out of resources: the sender may try again).
* End of association (released or aborted): every study it touched is finalized
  (``studies.study_finalize``: counters, preview, patient reconciliation, status available).

pynetdicom runs each association in its own thread: the database connection of that thread is closed when
the association ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, connection
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from telemedecine.dicom.net import VERIFICATION, no_delay
from telemedecine.models import AllowedSender, Study
from telemedecine.services import studies

logger = logging.getLogger("telemedecine.scp")

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_NOT_AUTHORISED = 0x0124
_NOBODY = [" "]  # an allow-list no calling AE title can match (an empty list would accept everyone)


def allowed_ae_titles() -> list[str]:
    return list(AllowedSender.objects.filter(is_active=True).values_list("ae_title", flat=True))


class AllowListAE(AE):
    """An AE whose required calling AE titles are the active `AllowedSender` rows, read at each request."""

    @property
    def require_calling_aet(self) -> list[str]:
        try:
            close_old_connections()
            titles = allowed_ae_titles()
        except DatabaseError:
            logger.exception("allow-list unavailable: association refused")
            return _NOBODY
        finally:
            connection.close()
        return titles or _NOBODY

    @require_calling_aet.setter
    def require_calling_aet(self, ae_titles: list[str]) -> None:
        self._require_calling_aet = list(ae_titles)


@dataclass
class _Association:
    calling_ae: str
    sender: AllowedSender | None = None
    studies: set[int] = field(default_factory=set)
    stored: int = 0
    refused: int = 0


class StoreSCP:
    """The handlers and the server; `serve` blocks until ``stop`` is set (SIGTERM in the command)."""

    def __init__(self, *, ae_title: str) -> None:
        self.ae_title = ae_title
        self._lock = threading.Lock()
        self._associations: dict[int, _Association] = {}
        self.ae = AllowListAE(ae_title=ae_title)
        self.ae.maximum_associations = 16
        for context in AllStoragePresentationContexts:
            self.ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(VERIFICATION)
        self.handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, self.on_open),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_RELEASED, self.on_end),
            (evt.EVT_ABORTED, self.on_end),
        ]

    def _state(self, assoc: Any) -> _Association:
        key = id(assoc)
        with self._lock:
            state = self._associations.get(key)
            if state is None:
                state = _Association(calling_ae=str(assoc.requestor.ae_title).strip())
                self._associations[key] = state
            return state

    def on_open(self, event: Any) -> None:
        no_delay(event.assoc)  # responses are small: do not let them wait for a delayed ACK

    def on_echo(self, event: Any) -> int:
        return STATUS_SUCCESS

    def on_store(self, event: Any) -> int:
        state = self._state(event.assoc)
        try:
            if state.sender is None:
                close_old_connections()
                state.sender = (
                    AllowedSender.objects.select_related("structure")
                    .filter(ae_title=state.calling_ae, is_active=True)
                    .first()
                )
            if state.sender is None:
                state.refused += 1
                return STATUS_NOT_AUTHORISED
            data = event.encoded_dataset(include_meta=True)
            instance = studies.study_ingest_file(
                data_or_path=data,
                source="scp",
                site=state.sender.structure,
                sending_ae=state.calling_ae,
            )
        except ValidationError as exc:
            state.refused += 1
            logger.warning("C-STORE from %s refused: %s", state.calling_ae, "; ".join(exc.messages))
            return STATUS_CANNOT_UNDERSTAND
        except DatabaseError:
            state.refused += 1
            logger.exception("C-STORE from %s: database unavailable", state.calling_ae)
            connection.close()
            return STATUS_OUT_OF_RESOURCES
        state.studies.add(instance.series.study_id)
        state.stored += 1
        return STATUS_SUCCESS

    def on_end(self, event: Any) -> None:
        with self._lock:
            state = self._associations.pop(id(event.assoc), None)
        try:
            if state is None:
                return
            for study_id in sorted(state.studies):
                try:
                    study_finalize_by_id(study_id)
                except (ValidationError, DatabaseError):
                    logger.exception("study %s could not be finalized", study_id)
            logger.info(
                "association from %s ended: %d stored, %d refused, %d studies",
                state.calling_ae,
                state.stored,
                state.refused,
                len(state.studies),
            )
        finally:
            connection.close()

    def serve(
        self,
        *,
        host: str,
        port: int,
        stop: threading.Event,
        ready: Callable[[], None] | None = None,
        grace: float = 30.0,
    ) -> None:
        """Listen until ``stop`` is set, then stop accepting, let running associations finish for up to
        ``grace`` seconds, and abort the rest."""
        server = self.ae.start_server((host, port), block=False, evt_handlers=self.handlers)
        assert server is not None  # non-blocking: the server object is returned
        if ready is not None:
            ready()
        try:
            stop.wait()
        finally:
            server.shutdown()
            deadline = time.monotonic() + grace
            while (
                any(assoc.is_established for assoc in self.ae.active_associations)
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            self.ae.shutdown()


def study_finalize_by_id(study_id: int) -> Study:
    close_old_connections()
    return studies.study_finalize(study=Study.objects.get(pk=study_id))
