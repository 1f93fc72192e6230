#!/usr/bin/env bash
# Create one virtualenv per anchor tool under benchmarks/.venvs/ (pins as used for the
# recorded results). Each is independent, so their dependency pins never meet ours.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3.11}"
mk() { [ -x "$here/.venvs/$1/bin/python" ] || "$py" -m venv "$here/.venvs/$1"; }

mk opendp     && "$here/.venvs/opendp/bin/pip" install -q 'opendp[mbi]==0.16.0' pandas
mk dpmm       && "$here/.venvs/dpmm/bin/pip" install -q 'dpmm==0.1.9'
# torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build.
mk smartnoise && "$here/.venvs/smartnoise/bin/pip" install -q 'torch==2.13.0' \
              && "$here/.venvs/smartnoise/bin/pip" install -q 'smartnoise-synth==1.0.8' packaging
# mostlyai-engine pulls torchvision/torchaudio builds that do not match torch 2.13 and break
# `import transformers` (which the engine imports): drop them, the tabular model needs neither.
mk mostlyai   && "$here/.venvs/mostlyai/bin/pip" install -q 'torch==2.13.0' \
              && "$here/.venvs/mostlyai/bin/pip" install -q 'mostlyai-engine==2.7.3' \
              && "$here/.venvs/mostlyai/bin/pip" uninstall -y -q torchvision torchaudio
mk mbi        && "$here/.venvs/mbi/bin/pip" install -q 'mbi==2.0.0' pandas
# The attack benchmark's anchor (benchmarks/run_attacks.py).
mk anonymeter && "$here/.venvs/anonymeter/bin/pip" install -q 'anonymeter==1.1.0'
