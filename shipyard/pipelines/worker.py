"""A warm pool for running steps, each in a process of its own, in milliseconds.

One long-lived worker process per pipeline module imports Shipyard and the module once, then
forks a fresh child for every step attempt. The child runs the step with its stdout and
stderr going to the step's log file, moves its artifact outputs into the content-addressed
store, writes a small result file and exits, so a step that crashes, calls ``os._exit`` or
segfaults only ends its own process. The executor talks to the worker over two pipes (JSON
lines); the worker stops every step and exits when the executor's end of the pipe closes
(also on ``kill -9``), and every child dies with the worker (``PR_SET_PDEATHSIG``), so a
killed executor leaves no step running.

Run as ``python -m shipyard.pipelines.worker REQUEST_FD EVENT_FD SPEC_JSON``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import PipelineError

if TYPE_CHECKING:
    from shipyard.pipelines.dsl import Pipeline

__all__ = ["PipelineRef", "WorkerPool", "get_pool", "pipeline_ref", "shutdown_pools"]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class PipelineRef:
    """Where a pipeline object lives: ``module:attr`` plus the file, for ``__main__``."""

    module: str
    attr: str
    file: str = ""

    def __str__(self) -> str:
        return f"{self.module}:{self.attr}"

    def to_dict(self) -> dict[str, str]:
        return {"module": self.module, "attr": self.attr, "file": self.file}


def pipeline_ref(pipeline: Pipeline) -> PipelineRef:
    """The module attribute that holds ``pipeline``, so another process can import it.

    Raises:
        PipelineError: the pipeline is not a module-level name (built inside a function).
    """
    module_name = pipeline.func.__module__
    module = sys.modules.get(module_name)
    for name, value in vars(module).items() if module else ():
        if value is pipeline:
            return PipelineRef(module_name, name, getattr(module, "__file__", "") or "")
    raise PipelineError(
        f"Pipeline '{pipeline.name}' is not a module-level name of {module_name}, so step "
        "processes cannot import it.",
        hint="Define the @pipeline function at the top level of a module or script.",
    )


def load_pipeline(ref: PipelineRef | dict[str, str]) -> Pipeline:
    """Import the pipeline ``ref`` names (a script run as ``__main__`` is loaded from its
    file under another name, so its ``if __name__ == "__main__"`` block does not run)."""
    from shipyard.pipelines.dsl import Pipeline

    if isinstance(ref, dict):
        ref = PipelineRef(**ref)
    if ref.module == "__main__" and sys.modules["__main__"].__dict__.get(ref.attr) is None:
        spec = importlib.util.spec_from_file_location("__mp_main__", ref.file)
        if spec is None or spec.loader is None:
            raise PipelineError(f"Cannot load pipeline {ref} from {ref.file!r}.")
        module = importlib.util.module_from_spec(spec)
        sys.modules["__mp_main__"] = sys.modules["__main__"] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = _import(ref)
        except ImportError as exc:
            raise PipelineError(
                f"Cannot import module '{ref.module}' of pipeline {ref}: {exc}.",
                hint="Run from the folder the module is importable from, or install it.",
            ) from exc
    value: Any = module
    for part in ref.attr.split("."):
        value = getattr(value, part, None)
    if not isinstance(value, Pipeline):
        raise PipelineError(
            f"{ref} is not a pipeline ({type(value).__name__}).",
            hint="Point at a function decorated with @pipeline: MODULE:NAME.",
        )
    return value


def _import(ref: PipelineRef) -> Any:
    """Import the module; when it is not on the path (a resume from another folder), add
    the folder its recorded file is in, for a top-level module."""
    try:
        return importlib.import_module(ref.module)
    except ImportError:
        folder = os.path.dirname(ref.file)
        if not ref.file or "." in ref.module or not os.path.exists(ref.file):
            raise
        sys.path.insert(0, folder)
        return importlib.import_module(ref.module)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# --- the executor side ---------------------------------------------------------------------


Sink = Callable[[dict[str, Any]], None]


class WorkerPool:
    """One worker process for one pipeline module; ``submit`` runs a step attempt in a new
    child of it and reports ``started`` and ``exited`` events to the sink given."""

    def __init__(self, ref: PipelineRef) -> None:
        self.ref = ref
        req_r, self._req_w = os.pipe()
        evt_r, evt_w = os.pipe()
        spec = {"ref": ref.to_dict(), "sys_path": sys.path, "cwd": os.getcwd()}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.pipelines.worker", str(req_r), str(evt_w)],
            pass_fds=(req_r, evt_w),
            stdin=subprocess.PIPE,
            close_fds=True,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(spec).encode())
        self._proc.stdin.close()
        os.close(req_r)
        os.close(evt_w)
        self._events = os.fdopen(evt_r, "rb")
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._sinks: dict[str, Sink] = {}
        self._ready = threading.Event()
        self.error = ""
        self.alive = True
        self._reader = threading.Thread(
            target=self._read, name="shipyard-worker-events", daemon=True
        )
        self._reader.start()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until the worker has imported the pipeline module; False when it has died
        since (start a new one).

        Raises:
            PipelineError: the worker could not import the module (the message says why).
        """
        if not self._ready.wait(timeout):
            raise PipelineError(f"The step worker for {self.ref} did not start in {timeout:g}s.")
        if self.error:
            raise PipelineError(f"The step worker for {self.ref} failed to start: {self.error}")
        return self.alive

    def _read(self) -> None:
        for line in self._events:
            try:
                event = json.loads(line)
            except ValueError:  # a line cut short by a dying worker
                continue
            if "ready" in event:
                self.error = event.get("error", "")
                self._ready.set()
                continue
            with self._lock:
                sink = self._sinks.get(event["id"])
                if event["event"] == "exited":
                    self._sinks.pop(event["id"], None)
            if sink is not None:
                sink(event)
        self.alive = False
        self._ready.set()
        self._events.close()
        self._close_requests()
        self._proc.wait()
        with self._lock:
            orphans, self._sinks = self._sinks, {}
        for task_id, sink in orphans.items():
            sink({"event": "exited", "id": task_id, "status": "worker lost"})

    def submit(self, task_id: str, request: dict[str, Any], sink: Sink) -> None:
        """Run one step attempt; ``request`` holds task, params, inputs, outputs, log and
        result paths and the content store folder."""
        with self._lock:
            if not self.alive:
                raise PipelineError(f"The step worker for {self.ref} is not running.")
            self._sinks[task_id] = sink
        self._send({"op": "run", "id": task_id, **request})

    def kill(self, task_id: str) -> None:
        """Kill the attempt's process group (the step and anything it started)."""
        with contextlib.suppress(OSError, PipelineError):
            self._send({"op": "kill", "id": task_id})

    def _send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            with self._write_lock:
                if self._req_w < 0:
                    raise OSError("the request pipe is closed")
                os.write(self._req_w, data)
        except OSError as exc:
            self.alive = False
            raise PipelineError(f"The step worker for {self.ref} is gone: {exc}") from exc

    def _close_requests(self) -> None:
        # Exactly once: a second os.close could hit a descriptor reused by someone else.
        with self._write_lock:
            if self._req_w >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._req_w)
                self._req_w = -1

    def close(self) -> None:
        self._close_requests()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)


_pools: dict[tuple[Any, ...], WorkerPool] = {}
_pools_lock = threading.Lock()


def get_pool(ref: PipelineRef) -> WorkerPool:
    """The warm pool for ``ref`` in this process, started on first use (or after the
    module's file changed, or the previous worker died)."""
    try:
        mtime = os.stat(ref.file).st_mtime_ns if ref.file else 0
    except OSError:
        mtime = 0
    key = (ref, mtime, tuple(sys.path))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or not pool.alive:
            pool = WorkerPool(ref)
            _pools[key] = pool
    return pool


def shutdown_pools() -> None:
    """Stop every worker of this process (also registered to run at exit)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


atexit.register(shutdown_pools)


# --- the worker side -----------------------------------------------------------------------


def _digest(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, or of a folder (over its sorted relative paths and file
    digests)."""
    if path.is_file():
        with open(path, "rb") as src:
            return hashlib.file_digest(src, "sha256").hexdigest(), path.stat().st_size
    outer = hashlib.sha256()
    size = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest, n = _digest(file)
        outer.update(f"{file.relative_to(path).as_posix()}\0{digest}\n".encode())
        size += n
    return outer.hexdigest(), size


def store_content(path: Path, cas_root: Path) -> tuple[str, int, Path]:
    """Move a written output into the content-addressed store: ``<root>/<ab>/<sha256>``.

    A rename, never a copy; when the same content is already stored, the new file is dropped
    and the stored one used. Stored files are made read-only, since later steps and runs read
    them in place.
    """
    digest, size = _digest(path)
    target = cas_root / digest[:2] / digest
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if file.stat().st_nlink == 1:  # not a step's own file, linked in rather than copied
                file.chmod(0o444)
        try:
            os.rename(path, target)
        except OSError:  # another process stored the same content first
            if not target.exists():
                raise
    if path.exists():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    return digest, size, target


def _run_child(pipeline: Pipeline, request: dict[str, Any]) -> int:
    """In the forked child: run the step, write the result file; returns the exit code."""
    from shipyard.pipelines.steprun import run_step

    result_path = Path(request["result"])
    try:
        result = run_step(
            pipeline,
            request["task"],
            request["params"],
            request["inputs"],
            request["outputs"],
        )
        cas_root = Path(request["cas"])
        artifacts = {}
        for name, meta in result.artifacts.items():
            digest, size, target = store_content(Path(request["outputs"][name]), cas_root)
            artifacts[name] = {**meta, "digest": digest, "size": size, "path": str(target)}
        payload: dict[str, Any] = {
            "ok": True,
            "outputs": result.outputs,
            "artifacts": artifacts,
            "details": result.details,
        }
        code = 0
    except BaseException as exc:
        traceback.print_exc()
        from shipyard.pipelines.steprun import recorded_details

        details = getattr(exc, "details", None)
        payload = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "details": {**recorded_details(), **(details if isinstance(details, dict) else {})},
        }
        code = 1
    try:
        tmp = result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, default=str))
        os.replace(tmp, result_path)
    except Exception:
        traceback.print_exc()
        code = 2
    return code


def _child(pipeline: Pipeline, request: dict[str, Any], close: list[int]) -> None:
    code = 3
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        log = Path(request["log"])
        log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        code = _run_child(pipeline, request)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _describe_status(status: int) -> str | int:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return os.waitstatus_to_exitcode(status)


def serve(req_fd: int, evt_fd: int, spec: dict[str, Any]) -> None:
    """The worker loop: fork a child per ``run`` request, kill on ``kill``, report exits.

    The worker notices its executor's death by the end of the request pipe (a dead process
    closes it), not by PR_SET_PDEATHSIG: that signal fires when the *thread* that started
    the worker ends, and executors may start workers from short-lived threads.
    """
    # Ctrl-C in a terminal is the executor's to handle; steps get their default back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Python 3.12+ warns when a process with threads forks (numpy or pyarrow may have started
    # some at import). The child only runs the step and exits, like multiprocessing's fork.
    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
    sys.path[:] = spec["sys_path"]
    os.chdir(spec["cwd"])

    children: dict[int, str] = {}

    def emit(event: dict[str, Any]) -> None:
        try:
            os.write(evt_fd, (json.dumps(event) + "\n").encode())
        except BrokenPipeError:  # the executor is gone: so are its steps
            for pid in children:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            os._exit(0)

    try:
        import shipyard.pipelines.steprun  # noqa: F401  (children inherit it imported)

        pipeline = load_pipeline(spec["ref"])
    except BaseException as exc:  # reported to the executor, which raises it there
        emit({"ready": False, "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
        sys.exit(1)
    emit({"ready": True})
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    by_id: dict[str, int] = {}
    buffer = b""
    running = True
    while running or children:
        readable, _, _ = select.select([req_fd, wake_r] if running else [wake_r], [], [], 1.0)
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            task_id = children.pop(pid, None)
            if task_id is not None:
                by_id.pop(task_id, None)
                emit({"event": "exited", "id": task_id, "status": _describe_status(status)})
        if running and req_fd in readable:
            chunk = os.read(req_fd, 65536)
            if not chunk:  # the executor closed the pipe or died: stop every step
                running = False
                for pid in children:
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                if request["op"] == "kill":
                    pid = by_id.get(request["id"])
                    if pid is not None:
                        with contextlib.suppress(OSError):
                            os.killpg(pid, signal.SIGKILL)
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(pipeline, request, [req_fd, evt_fd, wake_r, wake_w])
                # Set the group here too, so a kill right after the fork reaches it.
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)
                children[pid] = request["id"]
                by_id[request["id"]] = pid
                emit({"event": "started", "id": request["id"], "pid": pid})


def main(argv: list[str]) -> None:
    spec = json.loads(sys.stdin.read())
    serve(int(argv[0]), int(argv[1]), spec)


if __name__ == "__main__":
    main(sys.argv[1:])
