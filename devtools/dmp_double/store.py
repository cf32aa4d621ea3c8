"""Durable state of the DMP double: patients, registry entries and document files under `data_dir`.

`state.json` (patients, entries, submission sets) is rewritten atomically (temporary file, fsync,
rename) after each accepted transaction; documents are files under `documents/`, written before the
state that references them. One lock serialises every change (the double is a single process).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

PATIENT_STATUSES = ("open", "closed", "opposed")


def utcnow_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.documents_dir = data_dir / "documents"
        self.documents_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = data_dir / "state.json"
        self.lock = threading.RLock()
        self.state: dict[str, Any] = {"patients": {}, "entries": {}, "submission_sets": {}}
        if self.state_path.exists():
            loaded = json.loads(self.state_path.read_text(encoding="utf-8"))
            for key in self.state:
                self.state[key] = loaded.get(key, {})

    # --- persistence -------------------------------------------------------------------------------
    def save(self) -> None:
        with self.lock:
            tmp = self.state_path.with_suffix(".json.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(self.state, fh, ensure_ascii=False, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_path)

    def write_document(self, unique_id: str, content: bytes) -> str:
        name = hashlib.sha256(unique_id.encode()).hexdigest() + ".bin"
        path = self.documents_dir / name
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return name

    def read_document(self, name: str) -> bytes:
        return (self.documents_dir / name).read_bytes()

    def reset(self) -> None:
        with self.lock:
            self.state = {"patients": {}, "entries": {}, "submission_sets": {}}
            for path in self.documents_dir.iterdir():
                path.unlink()
            self.save()

    # --- patients ----------------------------------------------------------------------------------
    def patient(self, ins: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.state["patients"].get(ins)
            return copy.deepcopy(found) if found is not None else None

    def put_patient(self, *, ins: str, oid: str, status: str) -> dict[str, Any]:
        with self.lock:
            record = self.state["patients"].setdefault(ins, {"ins": ins, "created_at": utcnow_iso()})
            record.update({"oid": oid, "status": status, "updated_at": utcnow_iso()})
            self.save()
            return copy.deepcopy(record)

    def patients(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self.state["patients"].values()))

    # --- entries -----------------------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self.state["entries"].values()))

    def entry(self, entry_uuid: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.state["entries"].get(entry_uuid)
            return copy.deepcopy(found) if found is not None else None

    def entries_by_unique_id(self, unique_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy([e for e in self.state["entries"].values() if e["unique_id"] == unique_id])

    def commit(
        self,
        *,
        new_entries: list[dict[str, Any]],
        updates: dict[str, dict[str, Any]],
        submission_set: dict[str, Any],
    ) -> None:
        """Add `new_entries`, apply `updates` ({entry_uuid: fields}) and record the submission set."""
        with self.lock:
            for record in new_entries:
                self.state["entries"][record["entry_uuid"]] = record
            for entry_uuid, fields in updates.items():
                self.state["entries"][entry_uuid].update(fields)
            self.state["submission_sets"][submission_set["entry_uuid"]] = submission_set
            self.save()
