# syntax=docker/dockerfile:1.7
# ENRS production image. One image runs every process of the portal:
#   web    gunicorn enrs.wsgi:application (default command, port 8000, behind nginx)
#   worker celery -A enrs worker -Q default,mssante,dicom,dmp
#   beat   celery -A enrs beat
#   jobs   python manage.py migrate / createsuperuser / …
# Build with `docker compose build` (see deploy/README.md) or `docker build -t enrs:local .`.
# BuildKit is required (default since Docker Engine 23): the file uses heredocs and COPY --chmod.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# --------------------------------------------------------------------------------------------------
# 1. Dependencies: the runtime part of requirements.lock, every wheel checked against its hash.
# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS deps

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /build
COPY pyproject.toml requirements.lock ./

# requirements.lock (`make lock`) also pins the development tools (pytest, mypy, ruff, playwright…).
# Keep only what the [project].dependencies of pyproject.toml need: start from those names and follow
# the "# via" annotations that uv writes, keeping each kept package's pins and hashes untouched.
# The build fails if a runtime dependency is missing from the lock (run `make lock`).
RUN python - <<'PY'
import re
import sys
import tomllib
from pathlib import Path


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


pyproject = tomllib.loads(Path("pyproject.toml").read_text())
roots = {norm(re.match(r"[A-Za-z0-9._-]+", dep).group()) for dep in pyproject["project"]["dependencies"]}

blocks: dict[str, list[str]] = {}
parents: dict[str, set[str]] = {}
current = None
for line in Path("requirements.lock").read_text().splitlines():
    pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==", line)
    if pin:
        current = norm(pin.group(1))
        blocks[current], parents[current] = [line], set()
        continue
    if current is None:
        continue
    text = line.strip()
    if text.startswith("--hash="):
        blocks[current].append(line)
    elif text.startswith("# via "):
        parents[current].add(norm(text.removeprefix("# via ").split(" (")[0]))
    elif text.startswith("#   "):
        parents[current].add(norm(text.removeprefix("#").strip().split(" (")[0]))

missing = sorted(roots - blocks.keys())
if missing:
    sys.exit(f"requirements.lock does not pin {', '.join(missing)}: run `make lock`.")

keep = set(roots)
grown = True
while grown:
    grown = False
    for name, via in parents.items():
        if name not in keep and via & keep:
            keep.add(name)
            grown = True

Path("requirements.runtime.txt").write_text(
    "\n".join(line for name in blocks if name in keep for line in blocks[name]) + "\n"
)
print(f"runtime packages: {len(keep)}; left out (development only): {', '.join(sorted(blocks.keys() - keep))}")
PY

# A venv without pip: the image's pip installs into it from outside (pip --python).
# --only-binary: no compiler in the image, and no sdist build can run code at install time.
RUN python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install --require-hashes --no-deps --only-binary=:all: \
        -r requirements.runtime.txt \
 && pip --python /opt/venv/bin/python check

# --------------------------------------------------------------------------------------------------
# 2. Runtime: code owned by root (read-only for the process), a non-root user, static files collected.
# --------------------------------------------------------------------------------------------------
# -------------------------------------------------------------------------------------------------
# Chart.js for the dashboards, from the npm registry, pinned by package-lock.json (never committed).
FROM ${NODE_IMAGE} AS vendor
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="ENRS" \
      org.opencontainers.image.description="Espace Numérique Régional de Santé — portail régional e-santé" \
      org.opencontainers.image.licenses="EUPL-1.2"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=enrs.settings.production \
    ENRS_VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles

RUN groupadd --system --gid 10001 enrs \
 && useradd --system --uid 10001 --gid enrs --home-dir /app --no-create-home --shell /usr/sbin/nologin enrs

COPY --from=deps /opt/venv /opt/venv

WORKDIR /app
COPY . /app
COPY --from=vendor /src/node_modules/chart.js/dist/chart.umd.min.js /app/enrs/dashboards/static/dashboards/vendor/
COPY --from=vendor /src/node_modules/chart.js/LICENSE.md /app/enrs/dashboards/static/dashboards/vendor/chart.js-LICENSE.md

# Static files are collected into the image (whitenoise serves them with hashed names). The production
# settings refuse to load without SECRET_KEY, DATABASE_URL and REDIS_URL: build-only dummies are given
# to this one command and are not kept in the image (nothing connects to them).
RUN SECRET_KEY="build-only-collectstatic-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz" \
    DATABASE_URL="postgres://build@127.0.0.1:1/build" \
    REDIS_URL="redis://127.0.0.1:1/0" \
    ENRS_VAULT_KEYS="build:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" ENRS_VAULT_ACTIVE_KEY="build" \
    python manage.py collectstatic --no-input --verbosity 1 \
 && python -m compileall -q /app \
 && mkdir -p /app/var \
 && chown enrs:enrs /app/var

# Container health = GET /healthz on the local gunicorn: 200 when PostgreSQL, Redis and at least one
# Celery worker answer (the JSON body says which one is down otherwise). The Host header is the first
# entry of ALLOWED_HOSTS so that Django accepts the request.
COPY --chmod=0755 <<'PY' /usr/local/bin/enrs-healthcheck
#!/usr/local/bin/python3
import os
import sys
import urllib.error
import urllib.request

hosts = [h.strip().lstrip(".") for h in os.environ.get("ALLOWED_HOSTS", "").split(",")]
host = next((h for h in hosts if h and h != "*"), "localhost")
request = urllib.request.Request("http://127.0.0.1:8000/healthz", headers={"Host": host})
try:
    with urllib.request.urlopen(request, timeout=8) as response:
        print(response.status, response.read(2000).decode(errors="replace"))
except urllib.error.HTTPError as error:
    print(error.code, error.read(2000).decode(errors="replace"))
    sys.exit(1)
except OSError as error:
    print("gunicorn ne répond pas :", error)
    sys.exit(1)
PY

USER enrs:enrs
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=10s --start-period=40s --retries=3 CMD ["enrs-healthcheck"]

# Tune with WEB_CONCURRENCY (number of workers) and GUNICORN_CMD_ARGS (any other option), both read
# by gunicorn itself; FORWARDED_ALLOW_IPS lists the proxies allowed to say the request was HTTPS.
# The control socket (gunicornc) lives in /tmp: the home directory /app is not writable.
CMD ["gunicorn", "enrs.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--worker-tmp-dir", "/dev/shm", \
     "--control-socket", "/tmp/gunicorn.ctl", \
     "--timeout", "60", \
     "--graceful-timeout", "30", \
     "--max-requests", "2000", \
     "--max-requests-jitter", "200", \
     "--access-logfile", "-", \
     "--error-logfile", "-"]
