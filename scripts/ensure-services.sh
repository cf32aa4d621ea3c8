#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback before the tests run.
# Starts them when installed and stopped; installs them with apt-get when missing and running as root.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

say() { echo "[services] $*"; }

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    say "$* manquant(s) et pas root : installez-les (apt-get install $*) puis relancez."
    exit 1
  fi
  say "installation de $* (apt-get)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # wait_for <check-fn> <name>
  for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done
  say "$2 ne répond toujours pas après 30 s."
  exit 1
}

# --- PostgreSQL ---------------------------------------------------------------------------------
if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql postgresql-contrib
  fi
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    say "aucun cluster PostgreSQL trouvé sous /etc/postgresql."
    exit 1
  fi
  say "démarrage de PostgreSQL $version…"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for pg_up PostgreSQL
  # Tests connect as postgres on 127.0.0.1 without a password, as on the CI machines.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba" 2>/dev/null; then
    say "PostgreSQL demande un mot de passe sur 127.0.0.1 : définissez DATABASE_URL (voir README)."
  fi
fi
say "PostgreSQL répond sur $PGHOST:$PGPORT."
# The default database of the test settings (pytest creates its own test_ database next to it).
PGDATABASE_NAME=${ENRS_TEST_DATABASE:-enrs}
if ! psql -h "$PGHOST" -p "$PGPORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$PGDATABASE_NAME'" postgres 2>/dev/null | grep -q 1; then
  createdb -h "$PGHOST" -p "$PGPORT" -U postgres "$PGDATABASE_NAME" && say "base $PGDATABASE_NAME créée."
fi

# --- Redis --------------------------------------------------------------------------------------
if ! redis_up; then
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
  fi
  say "démarrage de Redis…"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/enrs.log
  wait_for redis_up Redis
fi
say "Redis répond sur 127.0.0.1:$REDIS_PORT."
