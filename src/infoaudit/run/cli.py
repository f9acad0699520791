"""``infoaudit run``: audit every quantity x backend x variant x dtype x device; write the report.

    infoaudit run --profile quick                       # every installed backend
    infoaudit run --impl my_pkg.losses:softmax --quantity softmax --framework torch
                                                        # a user's own implementation (+ --backends to compare)

Every element is graded by the one judge (:mod:`infoaudit.judging`); each cell carries its
grades and a verdict under ``--judge-profile`` (``default``: a stable algorithm's envelope and
better pass; ``strict``: as accurate as the conditioning allows). With ``--impl`` the user's
function is imported as ``infoaudit gate --impl`` imports it and audited into the same results
and report (its cells are keyed ``user-<framework>``); its cell verdict under a profile is the
gate's exit status under the same profile on the inputs both judge (the same judge, the gate's
probes among the fixed cases of both).

Work is split into groups (one per quantity x dtype; each group judges every generated input on
all backends of that dtype against one exact reference evaluation) and spread over a process
pool (``--jobs``, default: all cores). Results go to ``OUTPUT/results.json`` after every finished
group (atomic replace), so Ctrl-C or a kill loses no finished group and ``--resume`` continues.
At the end the report (Markdown, HTML, PNG) is rendered into OUTPUT.

No process outlives the command: the pool is closed on every exit path (normal end, an error,
Ctrl-C, SIGTERM -- which takes the same path as Ctrl-C and exits with 143 instead of 130): the
workers get a bounded time to finish on a normal end, and are killed (SIGKILL) on the other
paths, then reaped. Each worker also dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and a
thread that watches the parent pid everywhere), so even a ``kill -9`` of the command leaves
no worker behind.

Test hook: with ``INFOAUDIT_RUN_PAUSE_AFTER=N`` in the environment the command, once N groups
have finished and been written, prints ``infoaudit run: paused after N finished groups`` on
stderr and waits for a signal -- so a test can interrupt the run at a known point instead of
racing it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from ..dtypes import DTYPES
from ..results import schema as R
from . import compile_log

__all__ = ["DEFAULT_OUTPUT", "RESULTS_NAME", "PAUSE_ENV", "PAUSED_MESSAGE", "WORKER_GRACE_S", "Terminated",
           "add_arguments", "close_pool", "Progress", "main"]

DEFAULT_OUTPUT = "reports"
RESULTS_NAME = "results.json"
PAUSE_ENV = "INFOAUDIT_RUN_PAUSE_AFTER"   # test hook, see the module docstring
PAUSED_MESSAGE = "infoaudit run: paused after {n} finished groups"
WORKER_GRACE_S = 60.0   # on a normal end: how long idle workers get to exit before they are killed


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean shutdown as Ctrl-C (exit status 128 + signal)."""

    def __init__(self, signum=signal.SIGTERM):
        super().__init__(f"signal {signum}")
        self.signum = int(signum)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def add_arguments(p):
    p.add_argument("--profile", choices=("quick", "default", "thorough"), default="default",
                   help="search effort: quick (< 2 min on 2 cores), default (< 15 min), thorough (hours)")
    p.add_argument("--seed", type=int, default=0, help="seed of the search (runs are reproducible from it)")
    p.add_argument("--output", "-o", default=DEFAULT_OUTPUT, help="output folder (results.json + report)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUTPUT")
    p.add_argument("--jobs", "-j", type=int, default=0, help="worker processes (default: all cores)")
    p.add_argument("--backends", default="", help="comma-separated subset of backends (default: all installed)")
    p.add_argument("--dtypes", default="", help=f"comma-separated subset of {','.join(DTYPES)}")
    p.add_argument("--quantities", default="", help="comma-separated subset of quantities (default: all)")
    p.add_argument("--corpus-from", default="", metavar="RESULTS",
                   help="add the worst inputs of a previous results.json to the fixed corpus (regressions)")
    p.add_argument("--no-report", action="store_true", help="only write results.json")
    p.add_argument("--no-panels", action="store_true", help="skip the FP16/BF16/FP32 softmax panel")
    p.add_argument("--no-grad", action="store_true",
                   help="skip the gradient cells (autodiff of the torch and JAX ops against the exact derivative)")
    p.add_argument("--judge-profile", choices=("default", "strict"), default="default",
                   help="judging profile of the cell verdicts: default (envelope and better pass), strict "
                        "(conditioned and better pass); see docs/grades.md")
    p.add_argument("--impl", default="", metavar="MODULE:FUNCTION",
                   help="audit a user's own implementation (as `infoaudit gate --impl`); needs --quantity")
    p.add_argument("--quantity", default="", help="with --impl: the quantity the function implements")
    p.add_argument("--framework", choices=("numpy", "torch", "jax"), default=None,
                   help="with --impl: the framework whose arrays the function takes (default: inferred)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--scheduler", default="", metavar="tcp://HOST:PORT",
                   help="run the tasks on this Dask scheduler (pip install infoaudit[cluster])")
    p.add_argument("--cluster", default="", metavar="local[:N]",
                   help="start a Dask LocalCluster of N worker processes on 127.0.0.1 and run the tasks there")
    p.add_argument("--gpu", action="store_true",
                   help="with --scheduler/--cluster: audit GPU cells, on workers started with --resources GPU=1")
    p.add_argument("--cache", nargs="?", const="", default=None, metavar="DIR",
                   help="persistent reference cache (DIR; default $INFOAUDIT_CACHE or ~/.cache/infoaudit)")
    p.add_argument("--shard", default="", metavar="i/N",
                   help="run only the deterministic slice i of N (join the slices with `infoaudit merge`)")
    p.add_argument("--performance-report", default="", metavar="FILE.html",
                   help="with --scheduler/--cluster: write Dask's performance report (task stream, worker "
                        "profiles; needs bokeh) of the run")


def _split(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def _die_with_parent(parent_pid):
    """Make this worker exit when the process that started it dies (even by SIGKILL): the
    kernel's parent-death signal on Linux, and a daemon thread polling the parent pid."""
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the thread below still watches
            pass
    if parent_pid and os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    if parent_pid:
        threading.Thread(target=watch, name="infoaudit-parent-watch", daemon=True).start()


def _init_worker(parent_pid=None, cache_dir=None):
    _die_with_parent(parent_pid)
    if cache_dir:
        from ..reference.cache import activate

        activate(cache_dir)
    # the parent handles Ctrl-C and SIGTERM and shuts the pool down (killing the workers if need be)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # one thread per worker: the pool already uses every core
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = "1"
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001 - torch absent: its cells are skipped with a reason
        pass


def _task(kind, payload):
    """Pool entry point (module-level so that spawn can pickle it)."""
    import traceback

    try:
        if kind == "group":
            from .tasks import run_group

            return kind, payload, run_group(payload), None
        if kind == "grad":
            from .gradients import run_grad_group

            return kind, payload, run_grad_group(payload), None
        if kind == "panel" and payload.get("name") == "summation_order":
            from ..summation_order import panel

            return kind, payload, panel(payload), None
        if kind == "panel":
            from .tasks import softmax_precision

            return kind, payload, softmax_precision(payload), None
        if kind == "environment":
            from ..backends import status

            return kind, payload, R.environment(status()), None
        if kind == "environment_after":
            from ..results.fingerprint import fp_state

            return kind, payload, R.jsonable(fp_state()), None
        if kind == "errata":
            return kind, payload, _errata(), None
        if kind == "condition":
            from ..judging.condition import worked_examples

            return kind, payload, R.jsonable(worked_examples()), None
    except Exception as e:  # noqa: BLE001 - one broken group must not stop the run
        return kind, payload, None, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
    return kind, payload, None, f"unknown task {kind}"


def close_pool(ex, graceful: bool, others=(), grace_s: float = WORKER_GRACE_S) -> None:
    """Shut ``ex`` (a ProcessPoolExecutor) down and reap every worker process.

    ``graceful`` (all work done): the workers get ``grace_s`` seconds to take the shutdown
    sentinel and exit; otherwise (interrupt, error) pending work is cancelled and the workers are
    killed at once. Either way every multiprocessing child still alive at the end is killed and
    joined -- except ``others``, the children that existed before the pool (a caller's own) --
    so none of the pool's is left orphaned. Further SIGINT / SIGTERM are ignored meanwhile (a
    second Ctrl-C must not abandon the clean-up half way)."""
    import multiprocessing as mp

    others = set(others)

    def ours():
        return [p for p in mp.active_children() if p not in others]

    main = _in_main_thread()
    old = {}
    if main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        ex.shutdown(wait=False, cancel_futures=True)
        children = ours()
        if graceful:
            deadline = time.monotonic() + grace_s
            for p in children:
                p.join(max(0.0, deadline - time.monotonic()))
        for p in children:
            if p.is_alive():
                p.kill()
        for p in children:
            p.join(10.0)
        for p in ours():  # anything started meanwhile
            p.kill()
            p.join(10.0)
        ex.shutdown(wait=True)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _in_main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()


def _pause_after():
    v = os.environ.get(PAUSE_ENV, "").strip()
    try:
        return int(v) if v else None
    except ValueError:
        return None


def _pause_for_signal(n):
    """The test hook: report the pause, then sleep until a signal handler raises."""
    print(PAUSED_MESSAGE.format(n=n), file=sys.stderr, flush=True)
    while True:
        if hasattr(signal, "pause"):
            signal.pause()
        else:  # pragma: no cover - not POSIX
            time.sleep(3600)


def _errata():
    try:
        from .. import seeds
    except Exception as e:  # noqa: BLE001
        return {"available": False, "rows": [], "note": f"not available: infoaudit.seeds ({type(e).__name__}: {e})"}
    try:
        rows = seeds.errata_table()
    except Exception as e:  # noqa: BLE001
        return {"available": False, "rows": [], "note": f"not available: errata_table() failed ({type(e).__name__}: {e})"}
    return {"available": True, "rows": R.jsonable(rows), "note": ""}


def _weight(quantity, dtype, n_backends):
    from .. import quantities as Q

    q = Q.get(quantity)
    w = {Q.ROW: 3.0, Q.ROW_REDUCE: 2.0, Q.ELEMENTWISE: 1.0, Q.TABLE_REDUCE: 1.5, Q.ADAPTIVE: 3.0}[q.structure]
    if q.name in ("distillation_loss", "rlhf_kl_penalty", "label_smoothing_cross_entropy"):
        w *= 2.0
    return w * (1 + n_backends)


class Progress:
    def __init__(self, total_weight, total_groups, total_cells, quiet=False):
        self.tw, self.tg, self.tc = total_weight, total_groups, total_cells
        self.w = self.g = self.c = 0
        self.t0 = time.monotonic()
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def update(self, weight, cells, label=""):
        self.w += weight
        self.g += 1
        self.c += cells
        if self.quiet:
            return
        el = time.monotonic() - self.t0
        frac = self.w / self.tw if self.tw else 1.0
        eta = el * (1 - frac) / frac if frac > 0 else 0.0
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        line = (f"[{bar}] {self.g}/{self.tg} groups, {self.c}/~{self.tc} cells, "
                f"{_fmt(el)} elapsed, ETA {_fmt(eta)}  {label}")
        if self.tty:
            sys.stderr.write("\r" + line[:160].ljust(160))
            if self.g >= self.tg:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _fmt(s):
    s = int(s)
    return f"{s // 60}:{s % 60:02d}"


def _check_impl(spec, quantity, framework):
    """(framework, quantity, error line or None) of ``--impl``: the function imports (as the
    gate imports it), the quantity exists, the framework is installed."""
    from .. import quantities as Q
    from ..backends import BackendUnavailable, load
    from ..harness.frameworks import infer_framework
    from ..harness.loading import UsageError, load_impl

    if not quantity:
        return framework, "", "--impl needs --quantity (the quantity the function implements)"
    try:
        q = Q.get(quantity)
    except Q.InputError as e:
        return framework, "", f"--quantity: {e}"
    try:
        fn = load_impl(spec)
    except UsageError as e:
        return framework, q.name, str(e)
    framework = framework or infer_framework(fn)
    try:
        load(framework)
    except (BackendUnavailable, ImportError) as e:
        return framework, q.name, f"--framework {framework}: not available ({e})"
    return framework, q.name, None


def main(args) -> int:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from .. import quantities as Q
    from ..backends import BACKENDS
    from ..backends.grad import AUTODIFF
    from .profiles import PROFILE_SETTINGS

    out = args.output
    path = os.path.join(out, RESULTS_NAME)
    impl = getattr(args, "impl", "") or ""
    framework = getattr(args, "framework", None)
    if impl:
        framework, qname, err = _check_impl(impl, getattr(args, "quantity", ""), framework)
        if err:
            print(f"infoaudit run: {err}", file=sys.stderr)
            return 2
        from ..harness.frameworks import default_dtypes

        backends = _split(args.backends)          # the installed backends to compare with (default: none)
        dtypes = _split(args.dtypes) or list(default_dtypes(framework))
        qnames = [qname]
        args.no_grad = True
        args.no_panels = True
    else:
        if getattr(args, "quantity", ""):
            print("infoaudit run: --quantity goes with --impl; use --quantities for the backends", file=sys.stderr)
            return 2
        backends = _split(args.backends) or list(BACKENDS)
        dtypes = _split(args.dtypes) or list(DTYPES)
        qnames = _split(args.quantities) or list(Q.REGISTRY)
    judge_profile = getattr(args, "judge_profile", "default") or "default"
    for b in backends:
        if b not in BACKENDS:
            print(f"infoaudit run: unknown backend {b!r}; known: {', '.join(BACKENDS)}", file=sys.stderr)
            return 2
    for d in dtypes:
        if d not in DTYPES:
            print(f"infoaudit run: unknown dtype {d!r}; known: {', '.join(DTYPES)}", file=sys.stderr)
            return 2
    for qn in qnames:
        if qn not in Q.REGISTRY:
            print(f"infoaudit run: unknown quantity {qn!r}; see `infoaudit list`", file=sys.stderr)
            return 2
    shard_spec = None
    if args.shard:
        from ..cluster.shard import parse_shard

        try:
            shard_spec = parse_shard(args.shard)
        except ValueError as e:
            print(f"infoaudit run: {e}", file=sys.stderr)
            return 2
    cache_dir = None
    if args.cache is not None:
        from ..reference.cache import default_dir

        cache_dir = os.path.abspath(os.path.expanduser(args.cache or default_dir()))
    from .gradients import GRAD_SETTINGS

    config = {"profile": args.profile, "seed": args.seed, "backends": backends, "dtypes": dtypes,
              "quantities": qnames, "settings": PROFILE_SETTINGS[args.profile],
              "grad": not args.no_grad, "grad_settings": GRAD_SETTINGS[args.profile],
              "judge_profile": judge_profile}
    if shard_spec:
        config["shard"] = list(shard_spec)
    if impl:
        config["impl"] = {"impl": impl, "framework": framework, "quantity": qnames[0]}
    if args.resume and os.path.exists(path):
        try:
            doc = R.load(path)
        except (ValueError, OSError) as e:
            print(f"infoaudit run: cannot resume: {e}", file=sys.stderr)
            return 2
        old = doc.get("config", {})
        if old.get("shard") != config.get("shard"):
            print(f"infoaudit run: {path} was run with --shard {old.get('shard')}; resume with the same --shard",
                  file=sys.stderr)
            return 2
        if old.get("profile") != args.profile or old.get("seed") != args.seed:
            print(f"infoaudit run: {path} was run with profile {old.get('profile')!r} seed {old.get('seed')!r}; "
                  f"resume with the same --profile and --seed (or start afresh without --resume)", file=sys.stderr)
            return 2
        if old.get("judge_profile", "default") != judge_profile or old.get("impl") != config.get("impl"):
            print(f"infoaudit run: {path} was judged under {old.get('judge_profile', 'default')!r}"
                  f"{' for ' + old['impl']['impl'] if old.get('impl') else ''}; resume with the same "
                  f"--judge-profile and --impl (or start afresh without --resume)", file=sys.stderr)
            return 2
        doc["config"].update(R.jsonable({k: config[k] for k in ("backends", "dtypes", "quantities")}))
        doc["status"] = "running"
        resumed = True
    else:
        doc = R.new_document(config, {})
        resumed = False
    t_start = time.monotonic()
    elapsed_before = float(doc.get("elapsed_s") or 0.0)

    past = {}
    if args.corpus_from:
        from ..corpus import from_results

        try:
            past = from_results(args.corpus_from)
        except (OSError, ValueError, KeyError) as e:
            print(f"infoaudit run: --corpus-from {args.corpus_from}: {e}", file=sys.stderr)
            return 2
    tasks = []
    if not doc.get("environment") or not resumed:
        tasks.append(("environment", {}, 0.5))
    if not doc.get("seeds_errata"):
        tasks.append(("errata", {}, 0.5))
    if not doc.get("condition_examples"):
        tasks.append(("condition", {}, 0.5))
    nb = len(backends) + (1 if impl else 0)
    for qn in qnames:
        for d in dtypes:
            g = f"{qn}|{d}"
            if doc["groups"].get(g, {}).get("done"):
                continue
            extra = [(lab, a) for lab, dt, a in past.get(qn, []) if dt == d]
            task = {"quantity": qn, "dtype": d, "profile": args.profile, "seed": args.seed, "backends": backends,
                    "extra_lists": extra, "judge_profile": judge_profile}
            if impl:
                task.update(impl=impl, framework=framework)
            tasks.append(("group", task, _weight(qn, d, nb)))
    if not args.no_grad and any(b in AUTODIFF for b in backends):
        from .gradients import has_gradient

        for qn in qnames:
            if not has_gradient(qn):
                continue
            for d in dtypes:
                if doc["groups"].get(f"{qn}|{d}|grad", {}).get("done"):
                    continue
                tasks.append(("grad", {"quantity": qn, "dtype": d, "profile": args.profile, "seed": args.seed,
                                       "backends": backends, "judge_profile": judge_profile},
                               0.5 * _weight(qn, d, 2)))
    if not args.no_panels and "softmax" in qnames and "softmax_precision" not in doc.get("panels", {}):
        tasks.append(("panel", {"name": "softmax_precision", "profile": args.profile, "seed": args.seed,
                                "backends": backends, "dtypes": dtypes}, 12.0 if args.profile != "quick" else 4.0))
    if not args.no_panels and args.profile != "quick" and "summation_order" not in doc.get("panels", {}):
        tasks.append(("panel", {"name": "summation_order", "backends": backends}, 2.0))   # infoaudit order
    if shard_spec:
        from ..cluster.shard import shard

        tasks = shard(tasks, *shard_spec)
    # heaviest first keeps both workers busy until the end
    tasks.sort(key=lambda t: -t[2])
    n_groups = sum(1 for t in tasks if t[0] in ("group", "grad"))
    prog = Progress(sum(t[2] for t in tasks), len(tasks), n_groups * nb * 2, args.quiet)
    if resumed and not args.quiet:
        print(f"resuming {path}: {sum(1 for g in doc['groups'].values() if g.get('done'))} groups done, "
              f"{n_groups} to go", file=sys.stderr)
    perf_report = getattr(args, "performance_report", "") or ""
    if perf_report and not (args.scheduler or args.cluster):
        print("infoaudit run: --performance-report needs --scheduler or --cluster", file=sys.stderr)
        return 2
    if perf_report:
        import importlib.util

        if importlib.util.find_spec("bokeh") is None:
            print("infoaudit run: --performance-report: Dask's performance report needs bokeh (pip install bokeh)",
                  file=sys.stderr)
            return 2
    cluster_ex = None
    if args.scheduler or args.cluster:
        from ..cluster import ClusterError
        from ..cluster import executor as cluster_executor

        try:
            cluster_ex = cluster_executor(scheduler=args.scheduler or None, cluster=args.cluster or None,
                                          gpu=args.gpu, cache_dir=cache_dir)
        except ClusterError as e:
            print(f"infoaudit run: {e}", file=sys.stderr)
            return 2
    R.write_atomic(path, doc)

    jobs = args.jobs or os.cpu_count() or 1
    interrupted = None  # the KeyboardInterrupt / Terminated that stopped the run
    pause_after = _pause_after()
    finished = 0
    old_term = signal.signal(signal.SIGTERM, _raise_terminated) if _in_main_thread() else None
    ex = None
    pending = None
    before = mp.active_children()  # a caller's own children (main() may run inside a program): not ours to kill
    perf = contextlib.ExitStack()   # Dask's performance report, written when the tasks are done
    try:
        ex = cluster_ex or ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                               initializer=_init_worker, initargs=(os.getpid(), cache_dir))
        if perf_report:
            perf.enter_context(cluster_ex.performance_report(perf_report))
        pending = {ex.submit(_task, kind, payload): (kind, payload, w) for kind, payload, w in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                kind, payload, w = pending.pop(fut)
                try:
                    _, _, res, err = fut.result()
                except Exception as e:  # noqa: BLE001 - a crashed worker
                    res, err = None, f"{type(e).__name__}: {e}"
                ncells = 0
                label = kind
                if kind in ("group", "grad"):
                    label = f"{payload['quantity']} {payload['dtype']}" + (" gradients" if kind == "grad" else "")
                    if res is None:
                        gkey = f"{payload['quantity']}|{payload['dtype']}" + ("|grad" if kind == "grad" else "")
                        doc["groups"][gkey] = {"done": True, "error": err, "seconds": 0, "examples": 0}
                        print(f"\ninfoaudit run: group {label} failed: {err}", file=sys.stderr)
                    else:
                        R.add_group(doc, res)
                        ncells = len(res["cells"])
                elif kind == "panel":
                    doc.setdefault("panels", {})[payload["name"]] = res if res is not None else {"error": err}
                elif kind == "environment":
                    doc["environment"] = res if res is not None else R.environment(None)
                elif kind == "condition":
                    doc["condition_examples"] = res if res is not None else {"error": err}
                elif kind == "errata":
                    doc["seeds_errata"] = res if res is not None else {"available": False, "rows": [], "note": err}
                doc["elapsed_s"] = round(elapsed_before + time.monotonic() - t_start, 1)
                R.write_atomic(path, doc)
                prog.update(w, ncells, label)
                if kind in ("group", "grad"):
                    finished += 1
                    if finished == pause_after:
                        _pause_for_signal(finished)
        # the floating-point state as a worker sees it after its groups (torch.compile, XLA or a
        # fast-math library can switch flush-to-zero on in the process that ran them)
        res, err = ex.submit(_task, "environment_after", {}).result()[2:]
        doc.setdefault("environment", {})["fingerprint_after"] = res if res is not None else {"error": err}
        doc["environment"]["compiled"] = compile_log.summary(doc)   # torch.compile cost, FTZ/DAZ around it
        perf.close()
        if cluster_ex is not None:   # the task stream and every worker's fingerprint
            from ..cluster.workers import summary

            doc["cluster"] = summary(cluster_ex)
        R.write_atomic(path, doc)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
        interrupted = e
    finally:
        # every exit path (the end, Ctrl-C, SIGTERM, an error) closes the pool and reaps the workers
        try:
            graceful = interrupted is None and pending == {}
            if cluster_ex is not None:
                cluster_ex.shutdown(wait=graceful, cancel_futures=not graceful)
            elif ex is not None:
                close_pool(ex, graceful=graceful, others=before)
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
    doc["elapsed_s"] = round(elapsed_before + time.monotonic() - t_start, 1)
    doc["status"] = "interrupted" if interrupted is not None else "complete"
    doc["updated"] = R.now()
    R.write_atomic(path, doc)
    if interrupted is not None:
        done = sum(1 for g in doc["groups"].values() if g.get("done"))
        print(f"\ninterrupted: {done} finished groups kept in {path}; continue with "
              f"`infoaudit run --resume --profile {args.profile} --seed {args.seed} --output {out}`", file=sys.stderr)
        return 128 + interrupted.signum if isinstance(interrupted, Terminated) else 130
    from ..cluster.scale_doc import scale_section, write_scale

    doc["scale"] = scale_section(doc)   # measured task durations, projected on 1..128 workers
    R.write_atomic(path, doc)
    write_scale(doc["scale"], out)
    if not args.quiet:
        print(f"results: {path} ({len(doc['cells'])} cells, {doc['elapsed_s']:.0f} s)", file=sys.stderr)
    if args.no_report:
        return 0
    from ..report import render

    files = render(doc, out)
    if not args.quiet:
        print("report: " + ", ".join(files[:3]) + (f" (+{len(files) - 3} plots)" if len(files) > 3 else ""),
              file=sys.stderr)
    return 0
