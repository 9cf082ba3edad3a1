"""Starting and stopping the server processes pgcutover owns.

Two rules shape this module. PostgreSQL (and PgBouncer) refuse to run as root,
so when the harness runs as root every server process runs as the ``postgres``
OS user, in directories that user owns. And the harness stops exactly the
processes it started, by the pid it holds, never by name, so that a developer's
own PostgreSQL on the same machine is never touched. An operator may restart a
server with ``pg_ctl`` (it then has a pid the harness never saw): what runs
from the harness's own directories is the harness's, and is found there.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ClusterStartError, InfrastructureError

__all__ = [
    "ServerProcess",
    "another_free_port",
    "free_port",
    "give_to_server_user",
    "live_postmaster",
    "prepare_dir",
    "processes_under",
    "run_as_owner",
    "server_user",
    "stop_processes_under",
]

SERVER_OS_USER = "postgres"


def server_user() -> pwd.struct_passwd | None:
    """The OS user servers run as, or None to run them as ourselves (we are not root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise InfrastructureError(
            "running as root, and PostgreSQL refuses to run as root, but there is no "
            f"'{SERVER_OS_USER}' OS user to run it as; create one "
            f"(useradd --system {SERVER_OS_USER}) or run the harness as an ordinary user"
        ) from None


def give_to_server_user(path: Path) -> Path:
    """Make ``path`` the server user's: a server started as root's stand-in must write
    there (a root-owned log left by an earlier start makes PgBouncer refuse to start)."""
    user = server_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def prepare_dir(path: Path) -> Path:
    """Create ``path`` owned by the server user (PgBouncer and PostgreSQL write there)."""
    path.mkdir(parents=True, exist_ok=True)
    return give_to_server_user(path)


@dataclass(frozen=True)
class _Owner:
    """subprocess arguments that run a child as the server user (all None: as ourselves)."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None
    home: str | None = None

    def env(self, base: dict[str, str] | None = None) -> dict[str, str] | None:
        """The child's environment: ``base`` (None: ours) with the server user's HOME.

        libpq reads ``~/.postgresql`` (client certificates, a root CA) whenever it
        speaks TLS; root's home is not the server user's to read, and a replica's
        stream or a pg_basebackup over TLS would fail on it.
        """
        if self.home is None:
            return base
        return {**(os.environ if base is None else base), "HOME": self.home}


def _owner() -> _Owner:
    user = server_user()
    if user is None:
        return _Owner()
    return _Owner(user.pw_uid, user.pw_gid, [], user.pw_dir)


def run_as_owner(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float | None = 120.0,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a short-lived server tool (initdb, pg_basebackup) as the server user.

    ``timeout`` None: a copy of someone's database takes as long as its size needs.
    ``env``: the child's whole environment (a password goes there, not into ``argv``).
    """
    owner = _owner()
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=owner.env(env),
            stdin=subprocess.DEVNULL,
            user=owner.user,
            group=owner.group,
            extra_groups=owner.extra_groups,
        )
    except subprocess.TimeoutExpired:
        raise ClusterStartError(f"{what} did not finish within {timeout or 0:.0f} sec") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        if log is not None:
            log.write_text(output)
        raise ClusterStartError(
            f"{what} failed with exit code {done.returncode}",
            log_tail="\n".join(output.splitlines()[-15:]),
        )


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago.

    Another process can still take it before our server binds it; the server's
    start then fails with "Address already in use", which ServerProcess reports.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def another_free_port(taken: set[int]) -> int:
    """A free port that is not in ``taken``, added to it.

    A server binds its port only once it runs: choosing several ports before their
    servers start, the kernel may offer one it offered a moment ago.
    """
    port = free_port()
    while port in taken:
        port = free_port()
    taken.add(port)
    return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A long-running server we started, with its log, stopped by its own pid."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log: Path,
        port: int,
        stop_signal: signal.Signals = signal.SIGINT,
        discard_signal: signal.Signals = signal.SIGQUIT,
    ) -> None:
        """``stop_signal`` shuts the server down cleanly; ``discard_signal`` at once, for
        a server whose files are thrown away next (PostgreSQL's immediate shutdown)."""
        self.name = name
        self.log = log
        self.port = port
        self.argv = list(argv)
        self._stop_signal = stop_signal
        self._discard_signal = discard_signal
        with open(log, "ab") as out:
            give_to_server_user(log)
            # A session of its own: a Ctrl-C in the terminal reaches the harness,
            # which then stops the servers in order, instead of each of them at once.
            owner = _owner()
            self._proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=owner.env(),
                user=owner.user,
                group=owner.group,
                extra_groups=owner.extra_groups,
            )

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    def running(self) -> bool:
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def wait_ready(self, probe: Callable[[], bool], *, timeout: float = 30.0) -> None:
        """Poll ``probe`` until it answers True; fail early if the process died."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            if not self.running():
                raise self._start_error(f"exited with code {self._proc.returncode}")
            if probe():
                return
            if time.monotonic() > deadline:
                raise self._start_error(f"did not accept connections within {timeout:.0f} sec")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def _start_error(self, what: str) -> ClusterStartError:
        tail = _tail(self.log)
        message = f"{self.name} on 127.0.0.1:{self.port} {what}"
        if "Address already in use" in tail or "could not bind" in tail:
            message += (
                f"; port {self.port} was taken by another process after the harness chose it: "
                "run again (a new port is chosen each time)"
            )
        return ClusterStartError(message, log_tail=tail)

    def stop(self, *, timeout: float = 15.0) -> None:
        self._signal(self._stop_signal)
        self._wait_stopped(timeout)

    @staticmethod
    def discard_all(processes: Sequence[ServerProcess], *, timeout: float = 15.0) -> None:
        """Stop every one of ``processes`` together and without a clean shutdown: for
        servers whose files are removed next, a shutdown checkpoint and each server
        waiting for the one before to finish only cost time."""
        for proc in processes:
            proc._signal(proc._discard_signal)
        for proc in processes:
            proc._wait_stopped(timeout)

    def _signal(self, sig: signal.Signals) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def _wait_stopped(self, timeout: float) -> None:
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Stop at once (SIGKILL): used by fault scenarios to make a server vanish."""
        if self.running():
            self._proc.kill()
            self._proc.wait()


def live_postmaster(datadir: Path) -> int | None:
    """The pid of the postmaster running from ``datadir`` now (its postmaster.pid), if any."""
    try:
        first = (datadir / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first.strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its exit status is left


def processes_under(directory: Path) -> dict[int, list[str]]:
    """Processes (pid: argv) one of whose arguments is a path inside ``directory``.

    A server started by the harness or restarted by ``pg_ctl`` names its data
    directory or its configuration file there; nothing else on the machine does.
    """
    root = str(directory).rstrip("/") + "/"
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(arg.strip('"').startswith(root) for arg in argv) and _alive(int(entry.name)):
            found[int(entry.name)] = argv
    return found


def stop_processes_under(directory: Path, *, timeout: float = 15.0) -> list[int]:
    """Stop every process running from ``directory``, whatever its pid; the pids stopped.

    PostgreSQL's fast shutdown is SIGINT (SIGTERM would wait for every client to
    leave); PgBouncer's immediate one is SIGTERM. What is still there after
    ``timeout`` gets SIGKILL.
    """
    found = processes_under(directory)
    for pid, argv in found.items():
        sig = signal.SIGINT if Path(argv[0]).name == "postgres" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in found) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in found:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return sorted(found)
