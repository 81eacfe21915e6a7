#!/usr/bin/env bash
# Local object-store emulators for humans and CI: moto (S3), fake-gcs-server (GCS) and Azurite (Azure Blob),
# on free 127.0.0.1 ports, through the same module the test suite uses (tests/emulators.py).
#
#   scripts/emulators.sh install              # Azurite 3.35.0 into $TIERSCAN_EMU_CACHE (npm); the Python
#                                             # emulators come with: pip install '.[all,test]'
#   eval "$(scripts/emulators.sh start)"      # start all three; exports AWS_ENDPOINT_URL, AWS_* test keys,
#                                             # STORAGE_EMULATOR_HOST, AZURE_STORAGE_CONNECTION_STRING
#   scripts/emulators.sh start moto azurite   # or only some
#   scripts/emulators.sh stop                 # stops only the PIDs recorded by `start`
#
# State lives in $TIERSCAN_EMU_RUN (default ${TMPDIR:-/tmp}/tierscan-emu): pid/endpoint records and logs.
# The pytest suite does not need this script: its fixtures start and stop the emulators themselves.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
run="${TIERSCAN_EMU_RUN:-${TMPDIR:-/tmp}/tierscan-emu}"

case "${1:-}" in
  install) exec "$python" "$here/tests/emulators.py" install ;;
  start) shift; exec "$python" "$here/tests/emulators.py" start "$run" "$@" ;;
  stop) exec "$python" "$here/tests/emulators.py" stop "$run" ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
