"""A ``concurrent.futures`` executor on Dask distributed (issue 15): ``infoaudit run`` on a cluster.

:func:`executor` connects to a running scheduler (``scheduler="tcp://HOST:PORT"``) or starts a
:class:`distributed.LocalCluster` on loopback (``cluster="local[:N]"``: N worker processes of
one thread), and returns a :class:`ClusterExecutor`: ``submit`` returns plain
``concurrent.futures.Future`` objects, so ``infoaudit.run.cli``'s ``wait(..., FIRST_COMPLETED)`` loop, its
atomic ``results.json`` after each group and ``--resume`` work unchanged.

Tasks in ``infoaudit.run.cli``'s convention ``fn(kind, payload)`` are placed by :func:`.placement.place`
(CPU-pinned, or on a worker with ``resources={"GPU": 1}`` when the run audits GPU cells) and
run inside :func:`.worker.run_task` (one task at a time per worker process, the pool worker's
thread limits, the run's package versions, the reference cache). The executor keeps at most one
task per worker in flight and holds the rest itself (a worker that dies takes at most the task
it was running with it, so Dask's failure count points at the task that killed it):

* a worker killed mid-run loses nothing: Dask reruns its task elsewhere;
* a task on which ``allowed-failures + 1`` workers died (a framework that segfaults) fails
  with :class:`TaskFailed` (``KilledWorker: ...``) and the rest completes;
* a task no worker can run (no worker declares the GPU resource, or no worker at all) fails
  with :class:`Unrunnable` and the reason after ``unrunnable_after_s``, instead of waiting forever;
* an unreachable scheduler raises :class:`ClusterError` (one line) after ``timeout`` seconds.

It records where and when each task ran (``timings``: the worker's wall clock around the task,
the input of :mod:`.scale`), takes each worker's environment fingerprint on request
(:meth:`ClusterExecutor.fingerprints`, compared by :mod:`.workers`), and writes Dask's own
performance report (:meth:`ClusterExecutor.performance_report`, needs bokeh).

Nothing imports Dask until :func:`executor` is called; without it: ``pip install infoaudit[cluster]``.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import importlib.util
import logging
import os
import threading
import time
import uuid

from .placement import GPU_RESOURCE, Placement, place, task_key
from .worker import PACKAGES, run_timed, versions, worker_fingerprint

__all__ = ["ClusterExecutor", "ClusterError", "TaskFailed", "Unrunnable", "executor", "parse_cluster",
           "INSTALL_HINT"]

INSTALL_HINT = "pip install infoaudit[cluster]"
log = logging.getLogger(__name__)


def _one_line(s) -> str:
    return " ".join(str(s).split())


class ClusterError(RuntimeError):
    """The cluster cannot be used (unreachable scheduler, no workers, mismatched workers, Dask
    not installed); the message is one line (the CLI prints it and exits 2)."""

    def __init__(self, msg):
        super().__init__(_one_line(msg))


class TaskFailed(RuntimeError):
    """A task killed every worker that ran it (Dask's ``KilledWorker``)."""


class Unrunnable(RuntimeError):
    """No worker of the cluster can run the task (the message says why)."""


def _distributed():
    try:
        import distributed
    except ImportError as e:
        raise ClusterError(f"Dask distributed is not installed ({e}): {INSTALL_HINT}") from None
    return distributed


def parse_cluster(spec) -> int:
    """``"local"`` -> all cores, ``"local:N"`` -> N workers; ClusterError otherwise."""
    s = str(spec).strip()
    if s == "local":
        return os.cpu_count() or 1
    if s.startswith("local:"):
        try:
            n = int(s.split(":", 1)[1])
        except ValueError:
            n = 0
        if n >= 1:
            return n
    raise ClusterError(f"--cluster {spec!r}: expected local or local:N (N >= 1)")


def executor(scheduler=None, cluster=None, *, gpu=False, cache_dir=None, timeout=10.0, worker_timeout=60.0,
             allowed_failures=3, unrunnable_after_s=60.0, check_versions=True) -> ClusterExecutor:
    """A :class:`ClusterExecutor` on the scheduler at ``scheduler`` or on a new loopback
    LocalCluster (``cluster="local[:N]"``); exactly one of the two.

    ``gpu``: the run audits GPU cells (tasks with torch / JAX go to workers declaring
    ``GPU``); ``cache_dir``: the reference cache the workers use (a shared path on a cluster;
    None: no cache); ``timeout``: seconds to reach the scheduler; ``worker_timeout``: seconds to
    wait for a first worker; ``allowed_failures``: worker deaths a task may cause before it
    fails (LocalCluster only: an external scheduler has its own setting,
    ``distributed.scheduler.allowed-failures``, default 3); ``check_versions``: every worker
    must have the same package versions (and the client's infoaudit). Raises ClusterError."""
    if bool(scheduler) == bool(cluster):
        raise ClusterError("give exactly one of scheduler='tcp://HOST:PORT' and cluster='local[:N]'")
    d = _distributed()
    import dask

    owned = None
    if cluster:
        n = parse_cluster(cluster)
        cfg = {"distributed.scheduler.allowed-failures": int(allowed_failures),
               "distributed.scheduler.worker-saturation": 1.0}
        try:
            with dask.config.set(cfg):
                owned = d.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, memory_limit=0, silence_logs=logging.ERROR,
                                       resources={GPU_RESOURCE: 1} if gpu else None,
                                       scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        except Exception as e:  # noqa: BLE001 - any failure to start is one line for the CLI
            raise ClusterError(f"cannot start a local Dask cluster of {n} workers: {type(e).__name__}: {e}") from None
        address = owned.scheduler_address
    else:
        address = str(scheduler)
    client = None
    try:
        try:
            client = d.Client(address, timeout=timeout, set_as_default=False)
        except Exception as e:  # noqa: BLE001 - OSError, TimeoutError, ValueError (bad address)
            raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                               f"({type(e).__name__}: {e})") from None
        try:
            client.wait_for_workers(1, timeout=worker_timeout)
        except Exception:  # noqa: BLE001 - dask's TimeoutError
            raise ClusterError(f"no Dask worker joined the scheduler at {address} within {worker_timeout:g} s "
                               f"(start one: dask worker {address} --nthreads 1)") from None
        expected = _common_versions(client, address) if check_versions else None
        return ClusterExecutor(client, owned, gpu=gpu, cache_dir=cache_dir, versions=expected,
                               unrunnable_after_s=unrunnable_after_s)
    except BaseException:
        _close_quietly(client, owned)
        raise


def _common_versions(client, address):
    """The package versions every worker has (ClusterError when they differ, or when their
    infoaudit is not the client's)."""
    got = client.run(versions)
    if not got:
        raise ClusterError(f"the scheduler at {address} lists no worker")
    (first, base), *rest = sorted(got.items())
    for addr, v in rest:
        diff = [f"{k} {v.get(k)} vs {base.get(k)}" for k in PACKAGES if v.get(k) != base.get(k)]
        if diff:
            raise ClusterError(f"workers {addr} and {first} have different packages ({', '.join(diff[:3])}); "
                               f"one run needs one software stack")
    mine = versions().get("infoaudit")
    if base.get("infoaudit") != mine:
        raise ClusterError(f"the workers run infoaudit {base.get('infoaudit')}, this client {mine}")
    return {k: base.get(k) for k in PACKAGES}


def _close_quietly(client, cluster):
    for obj in (client, cluster):
        if obj is None:
            continue
        try:
            obj.close(timeout=10)
        except Exception:  # noqa: BLE001 - closing must not mask the error being raised
            log.debug("closing %r failed", obj, exc_info=True)


class _Item:
    __slots__ = ("future", "fn", "args", "kwargs", "placement", "dask", "key", "task", "order", "sent")

    def __init__(self, future, fn, args, kwargs, placement, task, order):
        self.future, self.fn, self.args, self.kwargs, self.placement = future, fn, args, kwargs, placement
        self.task, self.order = task, order
        self.sent = None
        self.dask = None
        self.key = None

    @property
    def gpu(self) -> bool:
        return bool(self.placement.resources)


class ClusterExecutor(cf.Executor):
    """See the module docstring. ``stats``: submitted, finished, failed, killed_worker,
    unrunnable counts; ``workers``: the running workers at the last look; ``timings``: one
    ``{"task", "order", "worker", "pid", "start", "stop", "seconds", "overhead_s"}`` per finished
    task (``task``: :func:`.placement.task_key`; ``order``: its submission index; ``overhead_s``:
    the time from handing it to Dask to collecting its result, less its run on the worker)."""

    def __init__(self, client, cluster=None, *, gpu=False, cache_dir=None, versions=None, unrunnable_after_s=60.0,
                 poll_s=0.05, refresh_s=1.0):
        self.client = client
        self.cluster = cluster
        self.gpu = bool(gpu)
        self.cache_dir = None if cache_dir is None else os.path.abspath(os.path.expanduser(str(cache_dir)))
        self.versions = versions
        self.unrunnable_after_s = float(unrunnable_after_s)
        self.poll_s, self.refresh_s = float(poll_s), float(refresh_s)
        self.stats = dict(submitted=0, finished=0, failed=0, killed_worker=0, unrunnable=0)
        self.workers = {}
        self.timings = []
        self._cv = threading.Condition()
        self._queue = collections.deque()
        self._inflight = {}
        self._closing = self._stop = self._closed = False
        self._since = {"workers": None, "gpu": None}
        self._refresh()
        self._thread = threading.Thread(target=self._loop, name="infoaudit-cluster-dispatch", daemon=True)
        self._thread.start()

    def __repr__(self):
        where = type(self.cluster).__name__ if self.cluster is not None else "scheduler"
        return f"<ClusterExecutor {where} {self.address} workers={len(self.workers)}>"

    @property
    def address(self) -> str:
        """The scheduler's address."""
        try:
            return str(self.client.scheduler.address)
        except AttributeError:
            return "?"

    # -- the Executor API
    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        """Run ``fn(*args, **kwargs)`` on the cluster; ``(kind, payload)`` arguments are placed
        by :func:`.placement.place`."""
        if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], dict):
            pl = place(args[0], args[1], self.gpu)
            task = task_key(args[0], args[1])
            args = (args[0], pl.payload) + tuple(args[2:])
        else:
            pl = Placement({}, None, False, getattr(fn, "__name__", "task"))
            task = pl.label
        fut = cf.Future()
        with self._cv:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.append(_Item(fut, fn, args, kwargs, pl, task, self.stats["submitted"]))
            self.stats["submitted"] += 1
            self._cv.notify_all()
        return fut

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Stop: with ``cancel_futures`` (or ``wait=False``) queued and running tasks are
        cancelled, else they finish first; then the client is closed, and the LocalCluster
        this executor started (its worker processes with it). An external cluster is left running."""
        with self._cv:
            if self._closed:
                return
            self._closing = True
            dropped = []
            if cancel_futures or not wait:
                while self._queue:
                    it = self._queue.popleft()
                    if it.future.cancel():
                        it.future.set_running_or_notify_cancel()
                dropped = list(self._inflight.values())
                self._inflight.clear()
                self._stop = True
            self._cv.notify_all()
        for it in dropped:
            self._cancel_dask(it)
            if not it.future.done():
                it.future.set_exception(cf.CancelledError("the cluster executor was shut down"))
        self._thread.join()
        self._closed = True
        _close_quietly(self.client, self.cluster)

    # -- beyond the Executor API
    def fingerprints(self, frameworks=None, timeout=300.0) -> dict:
        """``{worker address: fingerprint}`` of every running worker, each taken on that worker
        in the thread that runs its tasks (:func:`.worker.worker_fingerprint`; a worker that
        fails gives ``{"error": ...}``). Call it between tasks (at the end of a run: the FTZ
        state the tasks left behind)."""
        self._refresh()
        futs = {}
        out = {}
        for addr in sorted(self.workers):
            try:
                futs[addr] = self.client.submit(worker_fingerprint, frameworks, workers=[addr],
                                                allow_other_workers=False, pure=False,
                                                key=f"infoaudit-fingerprint-{uuid.uuid4().hex[:12]}")
            except Exception as e:  # noqa: BLE001 - the connection lost: no fingerprint, not a failed run
                out[addr] = {"error": _one_line(f"{type(e).__name__}: {e}")}
        for addr, f in futs.items():
            try:
                out[addr] = f.result(timeout=timeout)
            except Exception as e:  # noqa: BLE001 - a worker gone meanwhile, or a probe that failed
                out[addr] = {"error": _one_line(f"{type(e).__name__}: {e}")}
            finally:
                f.release()
        return out

    @contextlib.contextmanager
    def performance_report(self, filename):
        """Dask's performance report (one HTML file: task stream, worker profiles, bandwidth) of
        what runs inside the ``with`` block; ClusterError (one line) without bokeh."""
        if importlib.util.find_spec("bokeh") is None:
            raise ClusterError("Dask's performance report needs bokeh (pip install bokeh)")
        from distributed import performance_report

        path = os.path.abspath(os.path.expanduser(str(filename)))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with self.client.as_current(), performance_report(filename=path):
            yield path

    # -- the dispatch thread
    def _wake(self, *_):
        with self._cv:
            self._cv.notify_all()

    def _loop(self):
        next_refresh = time.monotonic() + self.refresh_s
        while True:
            with self._cv:
                if self._stop or (self._closing and not self._queue and not self._inflight):
                    return
            try:
                now = time.monotonic()
                if now >= next_refresh:
                    self._refresh()
                    next_refresh = now + self.refresh_s
                self._collect()
                self._dispatch()
                self._check_unrunnable(now)
            except Exception:  # noqa: BLE001 - the loop must survive a hiccup of the connection
                log.warning("infoaudit cluster dispatch", exc_info=True)
            with self._cv:
                if not self._stop:
                    self._cv.wait(self.poll_s)

    def _refresh(self):
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except Exception:  # noqa: BLE001 - scheduler briefly unreachable: keep the last view
            return
        self.workers = {a: w for a, w in (info.get("workers") or {}).items() if w.get("status", "running") == "running"}
        now = time.monotonic()
        self._since["workers"] = None if self.workers else (self._since["workers"] or now)
        self._since["gpu"] = None if self._n_gpu() else (self._since["gpu"] or now)

    def _n_gpu(self) -> int:
        return sum(1 for w in self.workers.values() if (w.get("resources") or {}).get(GPU_RESOURCE, 0) >= 1)

    def _dispatch(self):
        picked = []
        with self._cv:
            if self._stop:
                return
            free = len(self.workers) - len(self._inflight)
            gfree = self._n_gpu() - sum(1 for it in self._inflight.values() if it.gpu)
            keep = collections.deque()
            while self._queue:
                it = self._queue.popleft()
                if it.future.cancelled():
                    it.future.set_running_or_notify_cancel()
                    continue
                if free > 0 and (not it.gpu or gfree > 0):
                    free -= 1
                    gfree -= it.gpu
                    picked.append(it)
                else:
                    keep.append(it)
            self._queue = keep
        for it in picked:
            if not it.future.set_running_or_notify_cancel():
                continue
            it.key = f"infoaudit-{it.placement.label}-{uuid.uuid4().hex[:12]}"
            options = {"versions": self.versions, "gpu": it.gpu, "cpu_only": it.placement.cpu_only,
                       "cache_dir": self.cache_dir}
            try:
                it.dask = self.client.submit(run_timed, it.fn, it.args, it.kwargs, options, key=it.key, pure=False,
                                             resources=it.placement.resources, retries=0)
            except Exception as e:  # noqa: BLE001 - e.g. an argument that cannot be pickled
                self.stats["failed"] += 1
                it.future.set_exception(e)
                continue
            it.sent = time.time()
            with self._cv:
                self._inflight[it.key] = it
            it.dask.add_done_callback(self._wake)

    def _collect(self):
        with self._cv:
            done = [it for it in self._inflight.values() if it.dask.done()]
            for it in done:
                del self._inflight[it.key]
        for it in done:
            d = it.dask
            status = d.status
            try:
                if status == "finished":
                    res, when = d.result()
                    seconds = max(0.0, when["stop"] - when["start"])
                    # round trip on this clock less the run on the worker's: no clock offset enters
                    overhead = max(0.0, time.time() - it.sent - seconds)
                    self.timings.append(dict(task=it.task, order=it.order, **when, seconds=seconds,
                                             overhead_s=overhead))
                    it.future.set_result(res)
                    self.stats["finished"] += 1
                    continue
                if status == "error":
                    exc = d.exception()
                    if type(exc).__name__ == "KilledWorker":
                        self.stats["killed_worker"] += 1
                        exc = TaskFailed(_killed_message(it.placement.label, exc))
                    it.future.set_exception(exc)
                else:
                    it.future.set_exception(ClusterError(f"{it.placement.label}: the cluster dropped the task "
                                                         f"(status {status}; lost the scheduler?)"))
                self.stats["failed"] += 1
            except Exception as e:  # noqa: BLE001 - fetching the outcome failed (connection lost)
                if not it.future.done():
                    it.future.set_exception(ClusterError(f"{it.placement.label}: cannot fetch its result: "
                                                         f"{type(e).__name__}: {e}"))
                self.stats["failed"] += 1
            finally:
                d.release()

    def _check_unrunnable(self, now):
        reasons = []
        if self._since["workers"] is not None and now - self._since["workers"] > self.unrunnable_after_s:
            reasons.append((lambda it: True, f"no Dask worker at {self.address} for {self.unrunnable_after_s:g} s"))
        if self._since["gpu"] is not None and now - self._since["gpu"] > self.unrunnable_after_s:
            reasons.append((lambda it: it.gpu,
                            f"no worker declares the {GPU_RESOURCE} resource (start one with "
                            f"`dask worker {self.address} --nthreads 1 --resources {GPU_RESOURCE}=1`); "
                            f"waited {self.unrunnable_after_s:g} s"))
        if not reasons:
            return
        failed = {}
        with self._cv:
            for test, why in reasons:
                for it in list(self._queue) + list(self._inflight.values()):
                    if test(it):
                        failed.setdefault(id(it), (it, why))
            for it, _ in failed.values():
                if it.dask is not None:
                    self._inflight.pop(it.key, None)
                else:
                    self._queue.remove(it)
        for it, why in failed.values():
            self.stats["unrunnable"] += 1
            self.stats["failed"] += 1
            if it.dask is not None:
                self._cancel_dask(it)
            elif not it.future.set_running_or_notify_cancel():  # queued, and cancelled meanwhile
                continue
            it.future.set_exception(Unrunnable(f"{it.placement.label}: {why}"))

    def _cancel_dask(self, it):
        if it.dask is None:
            return
        try:
            it.dask.cancel()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            log.debug("cancel %s failed", it.key, exc_info=True)


def _killed_message(label, exc) -> str:
    try:
        last = exc.last_worker.address
        n = int(exc.allowed_failures) + 1
    except Exception:  # noqa: BLE001 - another distributed version: keep Dask's own text
        return f"KilledWorker: {label}: {exc}"
    return (f"KilledWorker: {label}: {n} worker{'s' if n != 1 else ''} died while running it (the last: {last}); a crash of "
            f"the framework (segfault, abort, out of memory)? See that worker's log")
