"""Where a run's shards go: local solver processes (the default), or the workers of a Dask cluster.

A shard is a solver and up to `bench.run.SHARD` items. Either executor yields the shards' results
in the order the shards were given, whatever order they finish in, so attempts.csv comes out in
the same order as a one-process run; the caller scores and writes them (it alone holds the
answers). At most a few shards per worker are in flight, so memory does not grow with the data set.

- `LocalExecutor(workers)`: up to `workers` solver processes (`SolverHost`) per solver, each driven
  by a thread of this process, each kept warm across shards.
- `DaskExecutor(scheduler, workers, images_by)`: a `distributed.LocalCluster` of `workers`
  processes, or the cluster at `scheduler`. Each Dask worker process keeps one solver process per
  solver and options, warm across shards, in a module-level cache. Images reach workers by path
  (a shared file system: the data set's absolute path must hold the same files there) or as the
  files' bytes in each task. Shards are pure: a worker that dies mid-shard has its shard redone
  elsewhere by Dask, and a shard's attempts are written once, when its result comes back.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from bench.host import Encoded, HostError, SolverHost, solver_threads
from bench.run import ConfigError, ShardDone, SolverSpec, attempt_shard, read_shard, start_error, throughput
from captchas.generate import Mapper
from solvers.base import is_paid, resources_for
from solvers.registry import SolverError, resolve

Item = tuple[str, str, str]  # id, file, sha256: what a worker needs to read an image, never its answer
Progress = Callable[[int, int], None]
Throughput = tuple[float, int, float, int]  # seconds, items answered, cold start, restarts of the batched pass
IMAGES_BY = ("path", "bytes")
# A LocalCluster shares the cores with the solver processes, so its own upkeep is slowed down: the
# workers' statistical profiler (every thread, every 10 ms), the event-loop health tick (20 ms) and
# the memory monitor (100 ms). The dashboard still shows tasks, workers and memory.
QUIET = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
         "distributed.worker.memory.monitor-interval": "1s", "distributed.admin.system-monitor.interval": "2s"}


class Executor(Protocol):
    """Where a run's solvers are started and its shards answered. A solver is started once (`start`), asked
    shard by shard (`attempts`) and in batches (`throughput`), then stopped (`stop`); the executor keeps
    whatever it started, so the runner holds nothing of it but the spec."""

    kind: str
    workers: int

    def describe(self) -> dict[str, Any]:
        """What the run's provenance records of it."""

    def threads(self, spec: SolverSpec) -> int:
        """The threads each of the solver's processes runs with."""

    def start(self, spec: SolverSpec) -> float:
        """Start the solver now, so that one that cannot start stops the run before it writes (SolverError);
        the seconds its first process took to start."""

    def cold_start(self, spec: SolverSpec) -> float:
        """The seconds the started solver's (latest) process took to start."""

    def attempts(self, spec: SolverSpec, folder: Path, shards: Iterable[Sequence[Item]],
                 timeout: float) -> Iterator[ShardDone]:
        """Each shard's answers, in the order the shards were given."""

    def throughput(self, spec: SolverSpec, folder: Path, items: Sequence[Item], batch_size: int, timeout: float,
                   progress: Progress | None = None) -> Throughput:
        """The batched pass over `items`."""

    def stop(self, spec: SolverSpec) -> None:
        """The solver is done with: what it holds here is given back (a warm cluster worker may keep it)."""

    def mapper(self) -> Mapper | None:
        """Where `generate` makes a data set's chunks: None for its own local processes."""

    def close(self) -> None:
        """Stop everything started."""


class LocalExecutor:
    """Solver processes on this machine, `workers` per solver."""

    kind = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--solver-workers must be at least 1, got {workers}")
        self.workers = workers
        # several processes share the cores: none gets more threads than its share
        self.most_threads = max(1, (os.cpu_count() or 1) // workers)
        self._first: dict[str, SolverHost] = {}  # each started solver's first process, kept warm until stopped

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "workers": self.workers, "most_threads_per_process": self.most_threads}

    def threads(self, spec: SolverSpec) -> int:
        """The threads each of the solver's processes gets: what it is meant to have, at most a share of the cores."""
        return min(solver_threads(spec.name, spec.options), self.most_threads)

    def _spawn(self, spec: SolverSpec) -> SolverHost:
        """A solver process with `threads(spec)` threads; SolverError if it cannot start."""
        try:
            return SolverHost(spec.name, spec.options, self.threads(spec))
        except HostError as e:
            raise SolverError(start_error(spec.name, str(e))) from None

    def start(self, spec: SolverSpec) -> float:
        host = self._first[_key(spec.name, spec.options)] = self._spawn(spec)
        return host.cold_start

    def cold_start(self, spec: SolverSpec) -> float:
        return self._first[_key(spec.name, spec.options)].cold_start

    def attempts(self, spec: SolverSpec, folder: Path, shards: Iterable[Sequence[Item]],
                 timeout: float) -> Iterator[ShardDone]:
        """Each shard's answers, in shard order, from `workers` solver processes (the others start first, together)."""
        free: queue.Queue[SolverHost] = queue.Queue()
        free.put(self._first[_key(spec.name, spec.options)])
        made: list[SolverHost] = []
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="shard") as pool:
                for host in pool.map(lambda _: self._spawn(spec), range(self.workers - 1)):
                    made.append(host)
                    free.put(host)

                def work(shard: Sequence[Item]) -> ShardDone:
                    host = free.get()
                    try:
                        return attempt_shard(host, read_shard(folder, shard), timeout)
                    finally:
                        free.put(host)

                yield from _in_order((pool.submit(work, shard) for shard in shards), _window(spec, 2 * self.workers))
        finally:
            for host in made:
                host.close()

    def throughput(self, spec: SolverSpec, folder: Path, items: Sequence[Item], batch_size: int, timeout: float,
                   progress: Progress | None = None) -> Throughput:
        """(seconds, answered, cold start, restarts) of the batched pass, on the first solver process."""
        host = self._first[_key(spec.name, spec.options)]
        restarts = host.restarts
        seconds, answered = throughput(host, read_shard(folder, items), batch_size, timeout, progress)
        return seconds, answered, host.cold_start, host.restarts - restarts

    def stop(self, spec: SolverSpec) -> None:
        host = self._first.pop(_key(spec.name, spec.options), None)
        if host is not None:
            host.close()

    def mapper(self) -> Mapper | None:
        return None  # generate's own process pool

    def close(self) -> None:
        for host in self._first.values():
            host.close()
        self._first.clear()


def _window(spec: SolverSpec, window: int) -> int:
    """Shards in flight at once: `window`, or one for a paid solver, whose every answer is written before the
    next item is asked, so that a kill loses no answer it paid for (solvers/base.py, `paid`)."""
    return 1 if is_paid(resolve(spec.name), spec.options) else window


def _in_order(futures: Iterator[Any], window: int) -> Iterator[Any]:
    """Results of futures in the order given, with at most `window` of them pending at once."""
    pending: collections.deque[Any] = collections.deque()
    try:
        for future in futures:
            pending.append(future)
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


class DaskExecutor:
    """Shards as Dask tasks: on a LocalCluster of `workers` processes, or the cluster at `scheduler`."""

    kind = "dask"

    def __init__(self, scheduler: str | None = None, workers: int = 2, images_by: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--executor dask needs Dask: pip install 'captcha-bench[dask]' (dask[distributed], "
                              "bokeh), here and on every worker") from None
        if images_by is not None and images_by not in IMAGES_BY:
            raise ConfigError(f"--images-by {images_by!r}: give path (a shared file system) or bytes")
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.scheduler, self.cluster = scheduler, None
        self._needs: dict[str, dict[str, float]] = {}
        self._cold: dict[str, float] = {}  # each started solver's first cold start
        self.images_by = images_by or ("bytes" if scheduler else "path")
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as e:
                raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({' '.join(str(e).split())[:200]}): "
                                  "start one (dask scheduler), or drop --scheduler for a local cluster") from None
        else:
            import dask

            with dask.config.set(QUIET):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                            silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))
        self.dashboard = self.client.dashboard_link

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "workers": self.workers, "scheduler": self.scheduler or "LocalCluster",
                "images_by": self.images_by}

    def _wanted(self, spec: SolverSpec) -> tuple[dict[str, float], list[str]]:
        """What the solver needs of a worker, and the workers that offer it (ConfigError: none does)."""
        wanted = resources_for(resolve(spec.name), spec.options)
        workers = self.client.scheduler_info()["workers"]
        able = [a for a, w in workers.items() if all(w.get("resources", {}).get(k, 0) >= v for k, v in wanted.items())]
        if not able:
            raise ConfigError(f"solver {spec.name!r} needs {wanted} of a worker and no Dask worker offers it: "
                              "start workers with e.g. dask worker ADDRESS --resources GPU=1")
        return wanted, able

    def _submit(self, spec: SolverSpec, function: Callable[..., Any], *args: Any, on: str | None = None) -> Any:
        key = _key(spec.name, spec.options)
        if key not in self._needs:  # once per solver: resolving a plugin and asking the scheduler take time
            self._needs[key] = self._wanted(spec)[0]
        wanted = self._needs[key]
        placed: dict[str, Any] = {"workers": [on], "allow_other_workers": False} if on else {}
        return self.client.submit(function, spec.name, _absolute(spec.options), *args, pure=False,
                                  resources=wanted or None, **placed)

    def threads(self, spec: SolverSpec) -> int:
        """The threads each of the solver's processes gets on a worker: what it is meant to have."""
        return solver_threads(spec.name, spec.options)

    def start(self, spec: SolverSpec) -> float:
        """Start the solver on every worker that can hold it, now (it stays there, warm); the first cold
        start. SolverError if it cannot start."""
        _, able = self._wanted(spec)
        cold = []
        for kind, value in self.client.gather([self._submit(spec, _start_task, on=a) for a in able]):
            if kind != "ok":
                raise SolverError(start_error(spec.name, value))
            cold.append(float(value))
        self._cold[_key(spec.name, spec.options)] = cold[0]
        return cold[0]

    def cold_start(self, spec: SolverSpec) -> float:
        return self._cold[_key(spec.name, spec.options)]

    def _images(self, folder: Path, items: Sequence[Item]) -> tuple[str | None, list[Encoded] | None]:
        if self.images_by == "path":
            return str(folder.resolve()), None
        return None, read_shard(folder, items)

    def attempts(self, spec: SolverSpec, folder: Path, shards: Iterable[Sequence[Item]],
                 timeout: float) -> Iterator[ShardDone]:
        def submitted() -> Iterator[Any]:
            for shard in shards:
                where, encoded = self._images(folder, shard)
                yield self._submit(spec, _shard_task, where, list(shard), encoded, timeout)

        yield from _in_order(submitted(), _window(spec, 2 * self.workers + 2))

    def throughput(self, spec: SolverSpec, folder: Path, items: Sequence[Item], batch_size: int, timeout: float,
                   progress: Progress | None = None) -> Throughput:
        where, encoded = self._images(folder, items)
        result: Throughput = self._submit(spec, _throughput_task, where, list(items), encoded,
                                                             batch_size, timeout).result()
        if progress:
            progress(len(items), len(items))
        return result

    def stop(self, spec: SolverSpec) -> None:
        pass  # a worker keeps its solver processes warm, for the next run on this cluster

    def mapper(self) -> Mapper | None:
        return self.map_ordered

    def map_ordered(self, function: Callable[[Any, Any], Any], shared: Any, chunks: Sequence[Any]) -> Iterator[Any]:
        """function(shared, chunk) for each chunk on the workers, results in order (`generate` uses it)."""
        handle = self.client.scatter(shared, broadcast=True)
        return _in_order((self.client.submit(function, handle, chunk, pure=False) for chunk in chunks),
                         4 * self.workers)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _absolute(options: dict[str, Any]) -> dict[str, Any]:
    """Options whose text names an existing file or folder here, as absolute paths: a worker's folder is not ours."""
    def path(value: Any) -> Any:
        try:
            if isinstance(value, str) and value and not os.path.isabs(value) and Path(value).exists():
                return str(Path(value).resolve())
        except OSError:  # text no file system takes as a name (too long, say): not a path
            pass
        return value

    return {k: path(v) for k, v in options.items()}


# On a Dask worker: solver processes kept warm across tasks, one free list per solver and options.

_hosts: dict[str, list[SolverHost]] = {}
_hosts_lock = threading.Lock()


def _key(name: str, options: dict[str, Any]) -> str:
    return json.dumps([name, options], sort_keys=True, default=str)


def _take(name: str, options: dict[str, Any]) -> SolverHost:
    with _hosts_lock:
        free = _hosts.setdefault(_key(name, options), [])
        if free:
            return free.pop()
    return SolverHost(name, options, solver_threads(name, options))


def _give(name: str, options: dict[str, Any], host: SolverHost) -> None:
    with _hosts_lock:
        _hosts.setdefault(_key(name, options), []).append(host)


def _start_task(name: str, options: dict[str, Any]) -> tuple[str, Any]:
    try:
        host = _take(name, options)
    except HostError as e:
        return "error", str(e)
    _give(name, options, host)
    return "ok", host.cold_start


def _encoded(where: str | None, items: list[Item], encoded: list[Encoded] | None) -> list[Encoded]:
    return encoded if encoded is not None else read_shard(Path(str(where)), items)


def _shard_task(name: str, options: dict[str, Any], where: str | None, items: list[Item],
                encoded: list[Encoded] | None, timeout: float) -> ShardDone:
    try:
        host = _take(name, options)
    except HostError as e:
        raise SolverError(start_error(name, str(e))) from None
    try:
        return attempt_shard(host, _encoded(where, items, encoded), timeout)
    finally:
        _give(name, options, host)


def _throughput_task(name: str, options: dict[str, Any], where: str | None, items: list[Item],
                     encoded: list[Encoded] | None, batch_size: int, timeout: float) -> Throughput:
    host = _take(name, options)
    try:
        restarts = host.restarts
        seconds, answered = throughput(host, _encoded(where, items, encoded), batch_size, timeout)
        return seconds, answered, host.cold_start, host.restarts - restarts
    finally:
        _give(name, options, host)


def executor(kind: str = "local", workers: int = 1, scheduler: str | None = None,
             images_by: str | None = None) -> Executor:
    """The executor the command line asks for; ConfigError, in one line, for one that cannot be."""
    if kind == "local":
        if scheduler or images_by:
            raise ConfigError("--scheduler and --images-by go with --executor dask: add it, or drop them")
        return LocalExecutor(workers)
    if kind == "dask":
        return DaskExecutor(scheduler, workers, images_by)
    raise ConfigError(f"--executor {kind!r}: give local or dask")
