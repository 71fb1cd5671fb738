#!/usr/bin/env bash
# Installs what Twinflow needs beyond Swift, from Debian's packages, when it is missing:
# librdkafka (headers and library), tcmalloc (every service's allocator), SQLite's headers,
# kcat (used by tests and benchmarks), curl (make run's readiness checks), Python's YAML and
# JSON Schema modules (the compose file's check), and the PostgreSQL server (the tests start a
# throwaway cluster of their own).
set -euo pipefail

missing=()
[ -f /usr/include/librdkafka/rdkafka_mock.h ] || missing+=(librdkafka-dev)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v curl >/dev/null 2>&1 || missing+=(curl)
compgen -G '/usr/lib/*/libtcmalloc_minimal.so.4' >/dev/null || missing+=(libtcmalloc-minimal4)
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
python3 -c 'import jsonschema' >/dev/null 2>&1 || missing+=(python3-jsonschema)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "missing: ${missing[*]}; install them as root (there is no sudo here):" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  sudo="sudo"
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${missing[*]} (Debian's names); install them with this system's package manager." >&2
  exit 1
fi
echo "installing: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
