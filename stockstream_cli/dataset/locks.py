"""One writer per day: a lock on (store, day), and on (store, day, batch) for `fetch-batch`.

Where: `locks/D/day.lock` and `locks/D/batch-N.lock` in the store. Taking one is a single exclusive create:
a local file opened with O_CREAT | O_EXCL, an S3 PUT with `IfNoneMatch='*'` (S3's conditional write: 412
when the key exists). The lock holds its holder as JSON: host, pid, command, started, heartbeat (UTC) and a
random token that is the lock's identity.

Stale (the holder died, kill -9 included, without releasing it):
- same host: its pid is gone;
- another host (or a Lambda, where pids mean nothing): its heartbeat is older than STALE_AFTER_SECONDS (120 s).
  A thread renews the heartbeat every HEARTBEAT_SECONDS (30 s) while the lock is held, so a live holder's
  heartbeat is never older than 30 s plus one slow write.
Its owner: a batch lock may name what owns it beyond the process (`owner`: the deployed fetcher passes its
state machine execution and batch, "EXECUTION/batch-N"). A lock whose owner is the taker's own is taken over at
once, live heartbeat or not: the Map retries a batch (30 s, then 60 s after a failure) only once the attempt
before it has ended, and an attempt killed by Lambda (Sandbox.Timedout, out of memory) leaves its lock behind
with a heartbeat under STALE_AFTER_SECONDS old. Any other taker (another execution, a local fetch-batch, a
lock with no owner) still waits for the staleness rule.
A stale lock (or one of the same owner) is taken over by a conditional replace: on S3 a PUT with `IfMatch` the stale lock's ETag (a
second taker gets 412); locally under a short guard file created with O_EXCL, after re-reading that the
lock is still the stale one, by an atomic rename over it.

Day against batch: a day lock is refused while another process holds a live batch lock of that day, and a
batch lock while another process holds the day lock; each takes its lock first and checks the other after,
so of two racing writers at least one backs off (both may, never neither). The holder releases on exit
(a `with` block: a Ctrl-C too); `wait=True` polls every WAIT_POLL_SECONDS until the lock is free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from . import layout
from ..errors import InputError, StoreError, aws_error_code, named

STALE_AFTER_SECONDS = 120.0
HEARTBEAT_SECONDS = 30.0
WAIT_POLL_SECONDS = 5.0


class LockHeld(InputError):
    """Another process writes this day (or batch): exit 2, naming the holder."""

    def __init__(self, what: str, holder: dict):
        since = str(holder.get("started", "?"))
        clock = since[11:16] if len(since) >= 16 else since
        self.held_by = (f"{what} is being written by {holder.get('command', '?')} (pid {holder.get('pid', '?')} "
                        f"on host {holder.get('host', '?')}, since {clock} UTC)")  # who holds it, without advice
        super().__init__(f"{self.held_by}; wait for it or pass {named('wait')}")
        self.holder = holder


def day_key(day: dt.date) -> str:
    return f"{layout.LOCKS_PREFIX}{day.isoformat()}/day.lock"


def batch_key(day: dt.date, batch_number: int) -> str:
    return f"{layout.LOCKS_PREFIX}{day.isoformat()}/batch-{batch_number}.lock"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def holder_info(command: str, owner: str | None = None) -> dict:
    now = utc_now()
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": command, "started": now,
              "heartbeat": now, "token": secrets.token_hex(8)}
    if owner:
        holder["owner"] = owner
    return holder


def batch_owner(execution: str | None, batch_number: int) -> str | None:
    """The owner a deployed fetcher's batch lock names: its execution and batch (None without an execution)."""
    return f"{execution}/batch-{batch_number}" if execution else None


def may_take_over(other: dict, holder: dict) -> bool:
    """Whether `holder` may replace the lock `other` holds: it is stale, or it names the same owner (the
    retry of an attempt that was killed: see the module docstring)."""
    owner = holder.get("owner")
    return bool(owner) and other.get("owner") == owner or is_stale(other)


def is_stale(holder: dict, *, now: dt.datetime | None = None, host: str | None = None,
             alive: Callable[[int], bool] | None = None) -> bool:
    """The rule in the module docstring."""
    host = host or socket.gethostname()
    alive = alive or pid_alive
    if holder.get("host") == host and not _in_lambda() and isinstance(holder.get("pid"), int):
        return not alive(holder["pid"])
    try:
        beat = dt.datetime.fromisoformat(str(holder["heartbeat"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return True  # not a lock this program wrote
    now = now or dt.datetime.now(dt.timezone.utc)
    return (now - beat).total_seconds() > STALE_AFTER_SECONDS


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


# ---------------------------------------------------------------------------------------------- backends


class _LocalLocks:
    def __init__(self, store):
        self.store = store

    def _path(self, key: str):
        return self.store._path(key)

    def create(self, key: str, body: bytes) -> bool:
        from .store import local_write_error

        path = self._path(key)
        missing = [folder for folder in [path.parent, *path.parent.parents] if not folder.exists()]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._created = getattr(self, "_created", []) + missing
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not path.parent.is_dir() or not path.is_file():
                raise local_write_error(NotADirectoryError(20, "Not a directory"), self.store.root, path) from None
            return False
        except OSError as exc:
            self._remove_created()
            raise local_write_error(exc, self.store.root, path) from None
        try:
            with os.fdopen(fd, "wb") as out:  # a full disk shows here: the probe of a writable store
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            self._remove_created()
            raise local_write_error(exc, self.store.root, path) from None
        return True

    def _remove_created(self) -> None:
        """Folders this process made for its locks, once empty: a refused run leaves the store as it was."""
        for folder in sorted(getattr(self, "_created", []), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def read(self, key: str) -> tuple[dict, str] | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return _parse(data), data.decode("utf-8", "replace")

    def replace(self, key: str, body: bytes, version: str) -> bool:
        """Swap the lock for `body` if it is still `version` (its text), under an O_EXCL guard."""
        path = self._path(key)
        guard = path.with_name(path.name + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            self._clear_dead_guard(guard)
            return False
        try:
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
            os.close(fd)
            current = self.read(key)
            if current is None or current[1] != version:
                return False
            fresh = path.with_name(f"{path.name}.{os.getpid()}.new")
            fresh.write_bytes(body)
            os.replace(fresh, path)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(guard)

    def _clear_dead_guard(self, guard) -> None:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(guard.read_text())
            if info.get("host") == socket.gethostname() and not pid_alive(int(info["pid"])):
                os.unlink(guard)

    def delete(self, key: str, version: str) -> None:
        current = self.read(key)
        if current is not None and current[1] == version:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(key))
        self._remove_created()
        for folder in (self._path(key).parent, self._path(layout.LOCKS_PREFIX)):  # locks/D/ and locks/ when empty
            with contextlib.suppress(OSError):
                folder.rmdir()

    def list(self, prefix: str) -> list[str]:
        return [key for key in self.store.list(prefix) if key.endswith(".lock")]


class _S3Locks:
    def __init__(self, store):
        self.store = store

    def _call(self, method: str, key: str, **kwargs):
        client = self.store.client
        return getattr(client, method)(Bucket=self.store.bucket, Key=self.store._key(key), **kwargs)

    def create(self, key: str, body: bytes) -> bool:
        try:
            self._call("put_object", key, Body=body, IfNoneMatch="*")
        except Exception as exc:
            if aws_error_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}:
                return False
            raise _s3_error(exc, key) from None
        return True

    def read(self, key: str) -> tuple[dict, str] | None:
        try:
            answer = self._call("get_object", key)
        except Exception as exc:
            if aws_error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise _s3_error(exc, key) from None
        return _parse(answer["Body"].read()), answer["ETag"]

    def replace(self, key: str, body: bytes, version: str) -> bool:
        try:
            self._call("put_object", key, Body=body, IfMatch=version)
        except Exception as exc:
            if aws_error_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409",
                                       "NoSuchKey", "404"}:
                return False
            raise _s3_error(exc, key) from None
        return True

    def delete(self, key: str, version: str) -> None:
        current = self.read(key)
        if current is not None and current[1] == version:
            with contextlib.suppress(Exception):
                self._call("delete_object", key)

    def list(self, prefix: str) -> list[str]:
        return [key for key in self.store.list(prefix) if key.endswith(".lock")]


def _s3_error(exc: Exception, key: str) -> StoreError:
    from .store import _store_error

    return _store_error(exc, f"cannot take the lock {key}")


def _parse(data: bytes) -> dict:
    try:
        holder = json.loads(data)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _backend(store):
    if hasattr(store, "bucket") and hasattr(store, "client"):
        return _S3Locks(store)
    if hasattr(store, "_path"):
        return _LocalLocks(store)
    inner = getattr(store, "inner", None) or getattr(store, "_inner", None)
    if inner is not None:
        return _backend(inner)
    raise TypeError(f"no locks for a store of type {type(store).__name__}")


# ---------------------------------------------------------------------------------------------- a held lock


@dataclasses.dataclass
class Held:
    key: str
    holder: dict
    version: str


class Lock:
    """A lock taken on `key`: renews its heartbeat on a thread until released."""

    def __init__(self, backend, held: Held, heartbeat_seconds: float = HEARTBEAT_SECONDS):
        self._backend = backend
        self.held = held
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_seconds,), daemon=True,
                                        name="stockstream-lock-heartbeat")
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(StoreError):
                self.renew()

    def renew(self) -> bool:
        """Write a fresh heartbeat, if the lock is still ours (a conditional replace); True when written."""
        with self._lock:
            holder = {**self.held.holder, "heartbeat": utc_now()}
            if not self._backend.replace(self.held.key, _encode(holder), self.held.version):
                return False
            current = self._backend.read(self.held.key)
            if current is None or current[0].get("token") != holder["token"]:
                return False
            self.held = Held(self.held.key, holder, current[1])
            return True

    def release(self) -> None:
        self._stop.set()
        with self._lock:
            with contextlib.suppress(StoreError):
                self._backend.delete(self.held.key, self.held.version)


def _encode(holder: dict) -> bytes:
    return json.dumps(holder, sort_keys=True).encode()


def _try_take(backend, key: str, holder: dict) -> Held | dict:
    """Take `key` for `holder`: the Held lock, or the live holder's info."""
    body = _encode(holder)
    for _ in range(3):
        if backend.create(key, body):
            current = backend.read(key)
            return Held(key, holder, current[1] if current else "")
        current = backend.read(key)
        if current is None:
            continue  # released meanwhile
        other, version = current
        if not may_take_over(other, holder):
            return other
        if backend.replace(key, body, version):
            after = backend.read(key)
            if after is not None and after[0].get("token") == holder["token"]:
                return Held(key, holder, after[1])
    current = backend.read(key)
    return current[0] if current else {"command": "another writer"}


def _live_others(backend, keys: Iterable[str], token: str) -> list[dict]:
    others = []
    for key in keys:
        current = backend.read(key)
        if current is not None and current[0].get("token") != token and not is_stale(current[0]):
            others.append(current[0])
    return others


def _take_checked(backend, key: str, holder: dict, conflicts: Callable[[], list[str]]) -> Held | dict:
    taken = _try_take(backend, key, holder)
    if not isinstance(taken, Held):
        return taken
    others = _live_others(backend, conflicts(), holder["token"])
    if others:
        backend.delete(key, taken.version)
        return others[0]
    return taken


@contextlib.contextmanager
def day_lock(store, days: dt.date | Iterable[dt.date], command: str, *, wait: bool = False,
             sleep: Callable[[float], None] = time.sleep, wait_at_most: float | None = None) -> Iterator[list[Lock]]:
    """Hold the day lock of each of `days` (run-local, rerun-failed, backfill, compact, the deployed run's
    summary) for the block. wait_at_most: with wait, LockHeld once that many seconds were waited for a day."""
    backend = _backend(store)
    wanted = sorted({days} if isinstance(days, dt.date) else set(days))
    held: list[Lock] = []
    try:
        for day in wanted:
            def batches(day=day) -> list[str]:
                return [k for k in backend.list(f"{layout.LOCKS_PREFIX}{day.isoformat()}/") if k != day_key(day)]

            held.append(_acquire(backend, day_key(day), command, day.isoformat(), batches, wait, sleep,
                                 wait_at_most=wait_at_most))
        yield held
    finally:
        for lock in reversed(held):
            lock.release()


@contextlib.contextmanager
def batch_lock(store, day: dt.date, batch_number: int, command: str, *, wait: bool = False,
               sleep: Callable[[float], None] = time.sleep, owner: str | None = None) -> Iterator[Lock]:
    """Hold batch N of day D (fetch-batch, the deployed fetcher) for the block; refused under a day lock.
    owner: batch_owner(execution, N) for the deployed fetcher: a lock left by the same owner is taken at once."""
    backend = _backend(store)
    lock = _acquire(backend, batch_key(day, batch_number), command,
                    f"{day.isoformat()} (batch {batch_number})", lambda: [day_key(day)], wait, sleep, owner)
    try:
        yield lock
    finally:
        lock.release()


def _acquire(backend, key: str, command: str, what: str, conflicts, wait: bool, sleep,
             owner: str | None = None, wait_at_most: float | None = None) -> Lock:
    waited = 0.0  # counted in polls, not read off a clock: a test's sleep returns at once
    while True:
        holder = holder_info(command, owner)
        taken = _take_checked(backend, key, holder, conflicts)
        if isinstance(taken, Held):
            return Lock(backend, taken)
        if not wait or (wait_at_most is not None and waited >= wait_at_most):
            raise LockHeld(what, taken)
        sleep(WAIT_POLL_SECONDS)
        waited += WAIT_POLL_SECONDS
