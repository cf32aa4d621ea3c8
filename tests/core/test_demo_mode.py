"""`make run`'s path: embedded defaults (SQLite, in-process tasks), demo data, a served portal."""

import subprocess

import httpx
import pytest

from tests.helpers import PYTHON, REPO, clean_env, free_port, port_open, wait_until


@pytest.mark.integration
def test_demo_portal_runs_on_embedded_defaults(tmp_path) -> None:
    var = tmp_path / "var"  # does not exist yet, as on a fresh clone
    env = clean_env(DJANGO_SETTINGS_MODULE="enrs.settings.dev", ENRS_VAR_DIR=str(var), DEBUG="false")

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    migrated = manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    seeded = manage("seed_demo", "--scale", "small", "--if-empty")
    assert seeded.returncode == 0, seeded.stderr
    # The demo accounts and their passwords are printed for the person who ran `make run`.
    for username in ("clinicien", "gcs", "ars", "admin"):
        assert username in seeded.stdout
    again = manage("seed_demo", "--scale", "small", "--if-empty")
    assert again.returncode == 0, again.stderr
    assert (var / "demo.sqlite3").exists()

    port = free_port()
    server = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), timeout=30, what="runserver")
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert home.status_code == 200
        assert "Mode démonstration" in home.text
        assert "ENRS — Bretagne" in home.text
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        assert {k: v["status"] for k, v in health.json()["services"].items()} == {
            "database": "embedded",
            "redis": "embedded",
            "celery": "embedded",
        }
        css = httpx.get(f"http://127.0.0.1:{port}/static/dsfr/dist/dsfr.min.css", timeout=10)
        assert css.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
