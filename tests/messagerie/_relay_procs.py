"""Processes the relay's fault test and benchmark drive: a private Redis and Celery workers that can be
SIGKILLed and restarted (owner "relay"). Never touches the machine's shared Redis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tests.helpers import REPO, port_open, wait_until


class RedisServer:
    """`redis-server` on a private loopback port, without persistence (a restart loses every queue)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(lambda: port_open(self.port), timeout=20, what="private redis")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


class CeleryWorker:
    """`celery -A enrs worker -Q mssante --pool solo` with its own environment; `kill()` is SIGKILL."""

    def __init__(
        self, *, env: dict[str, str], queues: str = "mssante", logdir: Path, concurrency: int = 1
    ) -> None:
        self.name = f"relay-{uuid.uuid4().hex[:8]}@localhost"
        self.env = env
        self.queues = queues
        self.logdir = logdir
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        logdir.mkdir(parents=True, exist_ok=True)

    @property
    def log_path(self) -> Path:
        return self.logdir / f"{self.name.split('@')[0]}.log"

    def start(self) -> None:
        pool = (
            ["--pool", "solo"]
            if self.concurrency == 1
            else ["--pool", "prefork", "-c", str(self.concurrency)]
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                str(REPO / ".venv" / "bin" / "celery"),
                "-A",
                "enrs",
                "worker",
                "-Q",
                self.queues,
                "-n",
                self.name,
                *pool,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError("worker died:\n" + self.log_path.read_text()[-3000:])
            return "ready." in self.log_path.read_text(errors="replace")

        wait_until(ready, timeout=timeout, what="celery worker", interval=0.3)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


class BrokerTask:
    """Stands in for ``messagerie.tasks.deliver`` in the test process: publishes to the private broker
    (the test settings run tasks eagerly in-process otherwise). A publish while the broker is down is
    dropped, as `outbox_dispatch_on_commit` does: the sweeper sends the row again later."""

    def __init__(
        self, broker_url: str, task_name: str = "messagerie.tasks.deliver", queue: str = "mssante"
    ) -> None:
        from celery import Celery

        # Not the current app: other tests' tasks must keep publishing to the test settings' broker.
        self.app = Celery("relay-test-client", broker=broker_url, set_as_current=False)
        self.app.conf.broker_connection_timeout = 1.0
        self.app.conf.broker_connection_retry_on_startup = False
        self.app.conf.task_publish_retry = False
        self.task_name = task_name
        self.queue = queue
        self.sent = 0
        self.dropped = 0

    def delay(self, pk: Any) -> None:
        self.apply_async(args=[pk])

    def apply_async(self, args: list[Any], countdown: float | None = None, **_: Any) -> None:
        try:
            self.app.send_task(self.task_name, args=args, queue=self.queue, countdown=countdown, retry=False)
            self.sent += 1
        except Exception:
            self.dropped += 1
            time.sleep(0.1)
