#!/usr/bin/env bash
# One-command set-up for a fresh machine: Debian WordNet files, .venv with pinned packages,
# and an NLTK WordNet root inside the venv. Idempotent: a second run only checks stamps.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# 1. WordNet 3.0 dict files from Debian (real users with internet may use nltk.download instead).
if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian wordnet-base and wordnet-sense-index"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null
  else
    echo "setup: WordNet dict files missing; run as root or: sudo apt-get install wordnet-base wordnet-sense-index" >&2
    echo "       (or, with internet: python -c 'import nltk; nltk.download(\"wordnet\")')" >&2
  fi
fi

# 2. The virtual environment with the pinned set (requirements.lock) and wit itself.
stamp="$VENV/.wit-installed"
want="$(cat requirements.lock pyproject.toml setup.py wit/queries/_wikiclean.c wit/candidates/_imgscan.c wit/imagehash/_hamming.c | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel setuptools
  echo "setup: installing pinned packages into $VENV (torch is large; first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q -r requirements.lock
  # -e . also compiles wit/queries/_wikiclean.c, wit/candidates/_imgscan.c and wit/imagehash/_hamming.c (needs a C compiler;
  # without one the pure-Python cleaner, lexbor and a numpy search are used, several times slower).
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

# 3. NLTK wants a real directory (no symlink since 3.9) named corpora/wordnet inside a data path;
#    <venv>/nltk_data is on NLTK's default search path. lexnames is not shipped by Debian.
WN="$VENV/nltk_data/corpora/wordnet"
if [ -f /usr/share/wordnet/data.noun ] && [ ! -f "$WN/lexnames" ]; then
  mkdir -p "$WN"
  for f in /usr/share/wordnet/*; do [ -f "$f" ] && cp "$f" "$WN/"; done
  cp scripts/wordnet_lexnames.tsv "$WN/lexnames"
  echo "setup: NLTK WordNet root at $WN"
fi
echo "setup: ok ($VENV)"
