"""The Ray executor: each workload or sweep point as a Ray task on a cluster, results back in one run directory.

Placement is Ray's: each task asks for the CPU cores and GPUs its workload declares (plugin.Resources; divided by
the suite's cpu_share and gpu_share, 1 by default, so points never share a core or a GPU at the same time) and its
declared host memory, and Ray runs it where they are free. Ray counts cores and does not pin them, so the worker
pins the child to as many cores as it was granted, holding a lock per core (ray_worker.CoreLease): points on one node
never share a core. A point no node can hold is recorded as failed at once, with the largest node's resources,
instead of waiting forever.

Tasks are never retried (a measurement is not silently repeated). Files and progress come back through a relay
queue and the task's result (ray_worker.py); a task that fails, a worker that dies and a node that is lost are
recorded like a failed child: the last stage the driver heard of, the reason, and the part files that reached
the driver. Ctrl-C cancels the remaining tasks and the points they stopped are recorded as interrupted.

Nothing calls out: Ray's usage statistics are off (RAY_USAGE_STATS_ENABLED=0 for a cluster started here; a cluster
started with `ray start` takes it from its own environment), and every worker runs with the Hugging Face libraries
offline.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..measure.store import atomic_write_bytes
from ..runmodel import Placement
from ..suite.config import ExecutorConfig, MeasureConfig
from .executor import Point, PointResult, Started
from .supervisor import GPU_READINGS, ChildWatch, Listener

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
"""Set on every worker (runtime_env) and, for a cluster started here, in this process before Ray starts."""
POLL_S = 0.2


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("executor ray: Ray is not installed; install it with `pip install 'ml-workload-profiler[cluster]'` (or `pip install ray`)") from None
    return ray


class RayExecutor:
    """Connects on construction (UserError when the cluster cannot be reached); `run` yields results as tasks end."""

    def __init__(self, config: ExecutorConfig, measure: MeasureConfig, listener: Listener) -> None:
        self.config, self.measure, self.listener = config, measure, listener
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
        if config.address and "RAY_AUTH_MODE" not in os.environ and _token_available():
            # `ray start` turns token authentication on; ray.init(address) does not look for the token unless told,
            # and Ray reads its settings when it is imported
            os.environ["RAY_AUTH_MODE"] = "token"
        self.ray = ray = require_ray()
        logging.getLogger("ray").setLevel(logging.ERROR)  # its notices (token authentication, several instances) are not ours to print
        self.address = _reachable(config.address) if config.address else None
        self.started_here = config.address is None
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(
                address=self.address or "local",  # local: a new cluster, never one `ray start` left running here
                num_cpus=config.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": OFFLINE_ENV},
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local cluster"
            hint = "start one with `ray start --head` or fix the address"
            if "auth" in str(exc).lower():
                hint = "the cluster wants its authentication token: copy it to ~/.ray/auth_token or set RAY_AUTH_TOKEN"
            elif "ray[client]" in str(exc):
                hint = "a ray:// address needs Ray Client: pip install 'ray[client]', or give the head's host:port"
            raise UserError(f"executor ray: cannot connect to {where} ({str(exc).splitlines()[0][:200]}); {hint}") from None
        finally:
            for sig, handler in handlers.items():  # ray.init installs its own SIGTERM handler (sys.exit): the profiler's stays
                signal.signal(sig, handler)
        self.nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.driver_node = ray.get_runtime_context().get_node_id()
        self.relay_lost: str | None = None

    # ------------------------------------------------------------------ the cluster

    def cluster(self) -> dict[str, Any]:
        """run.json's `cluster`: where the run's tasks go, as Ray reported it at the start."""
        return {
            "address": self.address or "a local cluster started for the run",
            "ray_version": self.ray.__version__,
            "nodes": [
                {"node_id": n["NodeID"], "host": n.get("NodeManagerHostname"), "ip": n.get("NodeManagerAddress"), "resources": n.get("Resources", {})}
                for n in self.nodes
            ],
            "resources": self.ray.cluster_resources(),
        }

    def resolve_device(self, requested: str) -> str:
        """The suite's device on the cluster: auto is cuda when a node has a GPU; cuda:N names a GPU of one machine,
        which Ray assigns itself (UserError)."""
        has_gpu = any(n.get("Resources", {}).get("GPU", 0) > 0 for n in self.nodes)
        if requested.startswith("cuda:"):
            raise UserError(f"device {requested}: with the ray executor Ray assigns each point its GPU; use device cuda (or auto)")
        if requested == "auto":
            return "cuda" if has_gpu else "cpu"
        if requested == "cuda" and not has_gpu:
            raise UserError("device cuda: no node of the Ray cluster has a GPU; use device cpu, or add GPU nodes")
        return requested

    def policy(self, device: str) -> str:
        share = []
        if self.config.cpu_share > 1:
            share.append(f"up to {self.config.cpu_share} points per CPU core")
        if self.config.gpu_share > 1 and device.startswith("cuda"):
            share.append(f"up to {self.config.gpu_share} points per GPU")
        if share:
            sharing = "shared by the suite's choice (" + ", ".join(share) + "): their measurements may be contended"
        else:
            sharing = "never shared between points running at the same time (each child pinned to cores it holds a lock on)"
        return f"ray: each point a Ray task holding the CPU cores{' and GPUs' if device.startswith('cuda') else ''} its workload declares, {sharing}"

    def resources(self, point: Point) -> dict[str, Any]:
        r = point.workload.declaration.resources
        gpus = r.gpus / self.config.gpu_share if point.spec.device.startswith("cuda") else 0
        out: dict[str, Any] = {"num_cpus": r.cpu_cores / self.config.cpu_share, "num_gpus": gpus}
        if r.memory_bytes:
            out["memory"] = r.memory_bytes
        return out

    def _infeasible(self, want: dict[str, Any]) -> str | None:
        need = {"CPU": want["num_cpus"], "GPU": want["num_gpus"], "memory": want.get("memory", 0)}
        for n in self.nodes:
            have = n.get("Resources", {})
            if all(have.get(k, 0) >= v for k, v in need.items() if v):
                return None
        largest = max(self.nodes, key=lambda n: (n.get("Resources", {}).get("GPU", 0), n.get("Resources", {}).get("CPU", 0)), default={})
        have = largest.get("Resources", {}) if largest else {}
        return (
            f"no node of the Ray cluster can hold this point: it needs {want['num_cpus']:g} CPU core(s)"
            + (f", {want['num_gpus']:g} GPU(s)" if want["num_gpus"] else "")
            + (f", {want['memory'] / 2**30:.1f} GiB of memory" if want.get("memory") else "")
            + f"; the largest node has {have.get('CPU', 0):g} CPU(s) and {have.get('GPU', 0):g} GPU(s)"
        )

    # ------------------------------------------------------------------ running points

    def run(self, points: list[Point], started: Started) -> Iterator[tuple[Point, PointResult]]:
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from .ray_worker import WorkerResult, run_point

        ray = self.ray
        ceilings = self._calibrate_nodes(points[0].spec.device) if points and self.measure.count_work else {}
        # on the driver's node: losing another node must not take the run's progress and files with it
        relay = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(self.driver_node, soft=True)})
        task = ray.remote(run_point)
        policy = self.policy(points[0].spec.device) if points else ""
        pending: dict[Any, int] = {}
        live: dict[int, _Live] = {}
        try:
            for i, point in enumerate(points):
                want = self.resources(point)
                why = self._infeasible(want)
                if why:
                    started(point)
                    yield point, PointResult(_lost_watch(point, "place", why, 0.0), Placement(executor="ray", policy=policy))
                    continue
                spec = replace(point.spec, threads=max(1, int(want["num_cpus"])))
                ref = task.options(**want, max_retries=0, retry_exceptions=False, name=f"profiler {point.label}").remote(
                    spec, self.measure.model_dump(), i, relay, policy, self.config.cpu_share == 1
                )
                pending[ref] = i
                live[i] = _Live(point)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                self._drain(relay, live, started)
                for ref in done:
                    i = pending.pop(ref)
                    self._drain(relay, live, started)
                    state = live.pop(i)
                    if state.began is None:  # its result came back before its start event was read
                        state.began = time.monotonic()
                        started(state.point)
                    try:
                        result: WorkerResult = ray.get(ref)
                    except Exception as exc:  # the task failed, its worker died or its node was lost: recorded like a failed child
                        yield (
                            state.point,
                            PointResult(_lost_watch(state.point, state.stage, _why_lost(exc), state.wall_s()), Placement(executor="ray", policy=policy)),
                        )
                        continue
                    _write_files(state.point.workdir, result.files)
                    calibration, why = ceilings.get(result.placement.node_id or "", (None, "the node joined after the run's calibration"))
                    node = replace(result.node, calibration=calibration, calibration_unavailable=why)
                    yield state.point, PointResult(result.watch, result.placement, node if self.measure.count_work else result.node)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            for i in sorted(pending.values()):
                state = live[i]
                if state.began is not None:  # a point not started yet was never run: it stays pending in run.json
                    watch = _lost_watch(
                        state.point, state.stage, f"interrupted by the user during phase '{state.stage}'; its Ray task was cancelled", state.wall_s()
                    )
                    watch.interrupted = True
                    yield state.point, PointResult(watch, Placement(executor="ray", policy=policy))
            raise  # the runner marks what was running as interrupted, also when nothing had started
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            try:
                ray.kill(relay.actor)
            except Exception:  # already gone with its node
                pass

    def _calibrate_nodes(self, device: str) -> dict[str, tuple[dict[str, Any] | None, str | None]]:
        """Each node's ceilings, measured once per run before any point (cached per machine, so usually read back): a
        task per node holding all of its CPUs and GPUs, so no point competes with the measurement. Node id ->
        (calibration or None, why not)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from .ray_worker import calibrate_node

        task = self.ray.remote(calibrate_node)
        refs = {}
        for n in self.nodes:
            have = n.get("Resources", {})
            gpus = have.get("GPU", 0) if device.startswith("cuda") else 0
            strategy = NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            refs[n["NodeID"]] = task.options(num_cpus=have.get("CPU", 0), num_gpus=gpus, scheduling_strategy=strategy, max_retries=0).remote(device)
        out = {}
        for node_id, ref in refs.items():
            try:
                _, calibration, why = self.ray.get(ref)
            except Exception as exc:  # a node lost meanwhile: its points, if any, say so
                calibration, why = None, f"calibration failed on node {node_id[:12]}: {type(exc).__name__}"
            out[node_id] = (calibration, why)
        return out

    def _drain(self, relay: Any, live: dict[int, _Live], started: Started) -> None:
        """Apply the progress and files the workers sent since the last call. A relay lost with its node (the driver's)
        stops the progress display; the points' results still come back with their tasks."""
        from ray.exceptions import RayError
        from ray.util.queue import Empty

        while not self.relay_lost:
            try:
                events = relay.get_nowait_batch(max(1, relay.qsize()))
            except Empty:
                return
            except RayError as exc:
                self.relay_lost = f"the relay queue was lost ({type(exc).__name__}): progress and part files stopped arriving"
                return
            for index, kind, *data in events:
                state = live.get(index)
                if state is None:
                    continue
                if kind == "start":
                    state.began = time.monotonic()
                    started(state.point)
                elif kind == "phase":
                    state.stage = data[0]
                    self.listener.phase(state.point.label, data[0], data[1])
                elif kind == "iter":
                    self.listener.iteration(state.point.label, data[0], data[1])
                elif kind == "file":
                    _write_files(state.point.workdir, {data[0]: data[1]})

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()


PROBE_TIMEOUT_S = 5.0


def _reachable(address: str) -> str:
    """The cluster's host:port, checked to answer within PROBE_TIMEOUT_S (ray.init waits without a limit): `auto` is the
    cluster `ray start` runs on this machine. A ray:// address (Ray Client) is returned as given. UserError otherwise."""
    if address.startswith("ray://"):
        return address
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address_or_die

        try:
            address = canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError as exc:
            why = str(exc).splitlines()[0][:160]
            raise UserError(f"executor ray:auto: no Ray cluster runs on this machine ({why}); start one with `ray start --head`") from None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"executor ray:{address}: not host:port (e.g. ray:10.0.0.5:6379), auto, or ray://host:10001")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(
            f"executor ray:{address}: nothing answers there within {PROBE_TIMEOUT_S:g} s ({exc.strerror or exc}); start the head with `ray start --head` "
            "or fix the address"
        ) from None
    return address


def _token_available() -> bool:
    """Whether Ray's authentication token is at hand: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (Ray's
    token authentication: https://docs.ray.io/en/latest/ray-security/token-auth.html)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


class _Live:
    """The driver's view of a point whose task is pending or running."""

    def __init__(self, point: Point) -> None:
        self.point = point
        self.stage = "queued"
        self.began: float | None = None

    def wall_s(self) -> float:
        return time.monotonic() - self.began if self.began is not None else 0.0


def _lost_watch(point: Point, stage: str, reason: str, wall_s: float) -> ChildWatch:
    """A watch for a point whose supervisor's own watch never came back: the stage last heard of and why."""
    why = f"{reason}; the GPU readings were not returned"
    return ChildWatch(point.spec.name, stage=stage, killed_reason=reason, wall_s=wall_s, gpu_unavailable=dict.fromkeys(GPU_READINGS, why))


def _why_lost(exc: BaseException) -> str:
    """One line on what happened to a task, in Ray's terms."""
    from ray import exceptions as rex

    kept = "the part files that reached the driver are kept"
    if isinstance(exc, rex.TaskCancelledError):
        return "its Ray task was cancelled"
    if isinstance(exc, rex.NodeDiedError):
        return f"the Ray node running it was lost ({kept})"
    if isinstance(exc, rex.WorkerCrashedError | rex.ActorDiedError):
        return f"the Ray worker running it died ({kept})"
    if isinstance(exc, rex.OutOfMemoryError):
        return f"Ray's memory monitor killed its worker: the node ran low on memory ({kept})"
    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return f"its Ray task failed on the worker: {type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''} ({kept})"
    return f"Ray could not return its result: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''} ({kept})"


def _write_files(workdir: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = (workdir / rel).resolve()
        if workdir.resolve() not in target.parents:  # a worker's path never leaves the point's directory
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
