"""The Docker Engine executor: one hardened container per attempt (docker SDK).

Hardening, on by default and not configurable from a spec:

* user 65534:65534 (nobody), read-only root filesystem, tmpfs ``/tmp`` (64 MiB,
  nosuid, nodev), all capabilities dropped, ``no-new-privileges``, an init process
  (docker-init) as PID 1 so signals reach the job;
* CPU (``nano_cpus``), memory (``mem_limit`` with ``memswap_limit`` equal: no swap) and
  pids limits; ``network_mode=none`` unless the spec says ``network: bridge``;
* only the job's work dir (``/work``) and its checkpoint dir are mounted;
* images are never pulled unless ``jobs.pull`` is ``missing`` (config/env
  ``FOGCTL_JOBS_PULL``): a job naming an image the engine lacks is rejected.

Every container carries ``io.fogctl.*`` labels (managed, job, run, state dir) so a
later fogctl can find it (:meth:`DockerExecutor.find`) after a crash.

Exit reasons: ``oom`` when the engine says ``OOMKilled`` and the job failed (a
process hit the limit, but the main process exiting 0 stays ``completed``, with a
note) or, on a local cgroup v2 host where the engine may miss it, when the memory
cgroups counted the kill (:mod:`.cgroups`: the container's ``memory.events`` if still
there, else its parent's count rising during a run that ended by SIGKILL);
``deadline`` when this executor killed it at the deadline; ``stopped`` after
:meth:`stop` (unless the job exited 85: ``checkpointed``); 137 alone is reported as
``exit-code`` "killed by SIGKILL"; ``interrupted`` when the engine stopped answering
during the attempt (a daemon restart: the daemon stops its containers on the way
down) and, once it answers again, the container is gone or ended by a signal; ``lost``
when it did not answer for ``jobs.engine_grace`` seconds (default 60). The SDK's
``wait(timeout=)`` raises a requests ``ConnectionError``/``ReadTimeout`` on timeout:
:meth:`DockerExecutor.wait` blocks on the Engine's wait in steps of at most 5 s (or the
deadline) and inspects once at the end.

Start-up cost matters (``fogctl submit --wait`` of a trivial container is compared
with ``docker run --rm``): :meth:`DockerExecutor.available` probes with a bare socket
and imports the SDK in the background, the client is built with the API version that
probe reported (no negotiation request), and one client serves every call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from fogctl.errors import InvalidInput, OperationFailed, ServiceUnavailable
from fogctl.jobs.executors import cgroups
from fogctl.jobs.executors.base import (
    LABEL_JOB,
    LABEL_MANAGED,
    LABEL_RUN,
    LABEL_STATE,
    WORK_DIR,
    Executor,
    Exit,
    Handle,
    Launch,
    Running,
)
from fogctl.jobs.spec import JobSpec
from fogctl.records import ComponentStatus

__all__ = [
    "DockerExecutor",
    "docker_client",
    "docker_endpoint",
    "hardened_options",
    "parse_ping",
    "probe_engine",
]

JOB_USER = "65534:65534"
TMPFS = {"/tmp": "rw,nosuid,nodev,size=64m"}
#: Seconds an attempt waits for an engine that stopped answering (``jobs.engine_grace``).
ENGINE_GRACE = 60.0


def docker_endpoint() -> str:
    """``docker.host`` config, else ``$DOCKER_HOST``, else the default unix socket."""
    from fogctl.components import docker_endpoint as configured
    from fogctl.state import State

    return configured(State().config)


def docker_client(
    base_url: str | None = None, timeout: int = 60, version: str | None = None
) -> Any:
    """A ``docker.DockerClient`` for the configured engine, or :class:`ServiceUnavailable`
    (exit 3) naming the socket it tried. ``version`` (an API version the engine
    reported) skips the negotiation request."""
    import docker

    url = base_url or docker_endpoint()
    try:
        # version=None negotiates the API version: that first request is the probe.
        client = docker.DockerClient(base_url=url, timeout=timeout, version=version)
    except Exception as exc:
        raise ServiceUnavailable(
            f"Docker Engine unreachable at {url}: {_short(exc)}",
            hint="start dockerd, or set docker.host / DOCKER_HOST",
        ) from None
    return client


PROBE_TIMEOUT = 0.5


def probe_engine(url: str) -> tuple[ComponentStatus, str | None]:
    """``GET /_ping`` over a bare socket (no docker/requests import; ~0.5 ms where
    ``/version`` takes ~10 ms): the engine's status and the API version its
    ``Api-Version`` header gives (``None`` when unreachable or not said). Only
    ``unix://``, ``tcp://`` and ``http://`` endpoints are probed this way; others
    (``ssh://``, TLS) report reachable with no version and the client finds out."""
    from fogctl.components import connect_endpoint

    if not url.startswith(("unix://", "/")):
        scheme = url.split("://", 1)[0] if "://" in url else "tcp"
        if scheme not in ("tcp", "http") or os.environ.get("DOCKER_TLS_VERIFY"):
            return ComponentStatus(True, url, "not probed"), None
    try:
        with connect_endpoint(url, PROBE_TIMEOUT, default_port=2375) as sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while len(data) < 1 << 16 and (chunk := sock.recv(65536)):
                data += chunk
    except OSError as exc:
        return ComponentStatus(False, url, exc.strerror or str(exc)), None
    return parse_ping(url, data)


def parse_ping(url: str, data: bytes) -> tuple[ComponentStatus, str | None]:
    """Status and API version from the raw HTTP answer to ``GET /_ping``."""
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    if not status_line.startswith("HTTP/1.") or " 200 " not in f"{status_line} ":
        return ComponentStatus(False, url, "not a Docker Engine API"), None
    api = headers.get("api-version")
    if "api-version" not in headers and not headers.get("server", "").startswith("Docker/"):
        return ComponentStatus(False, url, "not a Docker Engine API"), None
    server = headers.get("server", "")
    name = server.split("/", 1)[1].split(" ", 1)[0] if server.startswith("Docker/") else "?"
    valid = api is not None and api.replace(".", "").isdigit() and "." in api
    return ComponentStatus(True, url, f"Docker Engine {name}"), api if valid else None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def container_name(run_id: str, labels: Mapping[str, str]) -> str:
    """``fogctl-<run>-<8 hex of the state dir>``: unique per state dir and attempt."""
    home = labels.get(LABEL_STATE, "")
    return f"fogctl-{run_id}-{hashlib.sha256(home.encode()).hexdigest()[:8]}"


def job_labels(launch: Launch) -> dict[str, str]:
    spec = launch.spec
    labels = {f"io.fogctl.label.{k}": v for k, v in spec.labels.items()}
    labels.update(launch.labels)
    labels.update({LABEL_MANAGED: "1", LABEL_JOB: spec.id, LABEL_RUN: launch.run_id})
    return labels


def job_env(launch: Launch) -> dict[str, str]:
    spec = launch.spec
    env = dict(spec.env)
    env.update(FOGCTL_JOB_ID=spec.id, FOGCTL_RUN_ID=launch.run_id, FOGCTL_WORK=WORK_DIR)
    if spec.checkpoint is not None:
        env["FOGCTL_CHECKPOINT_DIR"] = spec.checkpoint.path
        if spec.checkpoint.interval_seconds is not None:
            env["FOGCTL_CHECKPOINT_INTERVAL"] = f"{spec.checkpoint.interval_seconds:g}"
    return env


def hardened_options(launch: Launch) -> dict[str, Any]:
    """The ``containers.run`` keyword arguments for an attempt (tested directly)."""
    spec = launch.spec
    mem = launch.memory_cap
    volumes = {str(launch.workdir): {"bind": WORK_DIR, "mode": "rw"}}
    if spec.checkpoint is not None and launch.checkpoint_dir is not None:
        volumes[str(launch.checkpoint_dir)] = {"bind": spec.checkpoint.path, "mode": "rw"}
    return {
        "entrypoint": list(spec.command) if spec.command else None,
        "command": list(spec.args) if spec.args else None,
        "name": container_name(launch.run_id, launch.labels),
        "labels": job_labels(launch),
        "environment": job_env(launch),
        "working_dir": WORK_DIR,
        "user": JOB_USER,
        "read_only": True,
        "tmpfs": dict(TMPFS),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "init": True,
        "pids_limit": launch.pids_cap,
        "nano_cpus": max(1, int(launch.cpu_cap * 1e9)),
        "mem_limit": mem,
        "memswap_limit": mem,
        "network_mode": "none" if spec.network == "none" else "bridge",
        "ipc_mode": "private",
        "stop_signal": spec.checkpoint.signal if spec.checkpoint else "SIGTERM",
        "volumes": volumes,
        "detach": True,
    }


def _ts(text: str | None) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        base = datetime.fromisoformat(head + "+00:00").timestamp()
        return base + (float("0." + frac[:6]) if frac else 0.0)
    except ValueError:
        return None


class DockerExecutor(Executor):
    """Jobs as hardened containers on the local (or configured) Docker Engine."""

    name = "docker"

    def __init__(self, base_url: str | None = None) -> None:
        self._base_url = base_url
        self._url: str | None = base_url
        self._api_version: str | None = None
        self._client: Any = None
        self._warming: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped: set[str] = set()
        self._deadline: set[str] = set()
        #: cgroup v2 OOM evidence: container id -> (its cgroup, its parent, parent count)
        self._oom: dict[str, tuple[str, str, int | None]] = {}
        self._driver: str | None = None
        self.cgroup_root = cgroups.CGROUP_ROOT

    @property
    def url(self) -> str:
        """The engine endpoint (``docker.host``, ``$DOCKER_HOST``, the default socket),
        as found by the last :meth:`available` (or on first use)."""
        if self._url is None:
            self._url = self._base_url or docker_endpoint()
        return self._url

    @property
    def client(self) -> Any:
        warming = self._warming
        if warming is not None:
            warming.join()
        with self._lock:
            if self._client is None:
                self._client = docker_client(self.url, version=self._api_version)
            return self._client

    def _warm(self) -> None:
        """Import the SDK and build the client (no request: the version is known); on a
        local cgroup v2 engine, learn its cgroup driver too (for OOM evidence)."""
        with contextlib.suppress(Exception), self._lock:
            if self._client is None:
                self._client = docker_client(self.url, version=self._api_version)
        if self._client is not None:  # not self.client: that would join this thread
            with contextlib.suppress(Exception):
                self._cgroup_driver(self._client)

    def _cgroups_v2(self) -> bool:
        """Does this engine run here on a cgroup v2 hierarchy we can read?"""
        local = self.url.startswith("unix://") or self.url.startswith("/")
        return local and cgroups.cgroup_version(self.cgroup_root) == 2

    def _cgroup_driver(self, client: Any = None) -> str | None:
        """The engine's cgroup driver (one ``GET /info`` per executor, v2 hosts only)."""
        if self._driver is None and self._cgroups_v2():
            try:
                info = (client or self.client).info()
                self._driver = str(info.get("CgroupDriver") or "cgroupfs")
            except Exception:
                self._driver = ""
        return self._driver or None

    def _watch_oom(self, cid: str, cgroup_parent: str | None = None) -> None:
        """Before the container starts: note its cgroup and its parent's OOM-kill count
        (v2 counts are hierarchical and the parent outlives the container)."""
        driver = self._cgroup_driver()
        if driver is None:
            return
        from pathlib import PurePosixPath

        own = cgroups.container_cgroup(cid, driver, cgroup_parent)
        parent = str(PurePosixPath(own).parent)
        before = cgroups.read_oom_kills(cgroups.events_file(self.cgroup_root, parent, 2))
        self._oom[cid] = (own, parent, before)

    def oom_evidence(self, ref: str, info: dict[str, Any]) -> cgroups.OomEvidence:
        """What says whether the attempt was OOM-killed: the Engine's flag and, on
        cgroup v2, the container's own counter (if still there) and its parent's."""
        engine = bool(info.get("State", {}).get("OOMKilled"))
        watched = self._oom.get(ref)
        if watched is None:
            return cgroups.OomEvidence(engine=engine)
        own, parent, before = watched
        root = self.cgroup_root
        return cgroups.OomEvidence(
            engine=engine,
            container=cgroups.read_oom_kills(cgroups.events_file(root, own, 2)),
            parent_before=before,
            parent_after=cgroups.read_oom_kills(cgroups.events_file(root, parent, 2)),
            version=2,
            parent=parent,
        )

    def available(self) -> ComponentStatus:
        """A bare-socket probe of the configured endpoint (a few ms, re-read each
        call); when the engine answers, the SDK is imported and the client built in the
        background, overlapping the caller's own work until the first API call."""
        url = self._base_url or docker_endpoint()
        status, version = probe_engine(url)
        warming = self._warming
        if url != self._url or (warming is None and self._client is None):
            if warming is not None:
                warming.join()
            self.close()  # the endpoint changed (or first probe): a fresh client
            self._url, self._api_version = url, version
            self._warming = None
            if status.reachable:
                self._warming = threading.Thread(target=self._warm, daemon=True)
                self._warming.start()
        return status

    def accepts(self, spec: JobSpec) -> bool:
        return spec.image is not None

    def _api(self, fn: Any, *args: Any, **kw: Any) -> Any:
        import docker
        import requests

        try:
            return fn(*args, **kw)
        except requests.exceptions.ConnectionError as exc:
            raise ServiceUnavailable(
                f"Docker Engine unreachable at {self.url}: {_short(exc)}"
            ) from None
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            raise OperationFailed(f"Docker Engine: {exc.explanation or _short(exc)}") from None

    def _image(self, image: str) -> Any:
        import docker

        try:
            return self._api(self.client.images.get, image)
        except docker.errors.NotFound:
            pass
        from fogctl.state import State

        if str(State().config.get("jobs.pull", "never")) == "missing":
            try:
                return self._api(self.client.images.pull, image)
            except (docker.errors.NotFound, OperationFailed) as exc:
                raise InvalidInput(f"image {image}: cannot pull: {exc}") from None
        raise InvalidInput(
            f"image {image} is not in the Docker Engine and fogctl does not pull "
            "(set jobs.pull: missing, or build one: fogctl jobs image busybox)"
        )

    def start(self, launch: Launch) -> Handle:
        import docker

        spec = launch.spec
        if spec.image is None:
            raise InvalidInput(f"job {spec.id}: the docker executor runs images; it names wasm")
        opts = hardened_options(launch)
        try:
            cid = self._create(spec.image, opts)
        except docker.errors.NotFound:
            self._image(spec.image)  # raises InvalidInput unless it can pull the image
            cid = self._create(spec.image, opts)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise OperationFailed(f"Docker Engine: {exc.explanation or _short(exc)}") from None
            # A leftover of this very attempt (fogctl died between create and record).
            with contextlib.suppress(docker.errors.NotFound, OperationFailed):
                self._api(self.client.api.remove_container, opts["name"], force=True)
            cid = self._create(spec.image, opts)
        with contextlib.suppress(OSError):
            self._watch_oom(cid)
        try:
            self._api(self.client.api.start, cid)
        except (OperationFailed, docker.errors.NotFound) as exc:
            with contextlib.suppress(Exception):
                self.client.api.remove_container(cid, force=True)
            raise OperationFailed(f"job {spec.id}: container did not start: {exc}") from None
        return Handle(self.name, cid, launch.run_id, time.time(), launch.deadline)

    def _create(self, image: str, opts: dict[str, Any]) -> str:
        """``docker create`` through the low-level API (no pull, no extra inspect)."""
        import requests

        api = self.client.api
        binds = {src: dict(v) for src, v in opts["volumes"].items()}
        host_config = api.create_host_config(
            binds=binds,
            read_only=opts["read_only"],
            tmpfs=opts["tmpfs"],
            cap_drop=opts["cap_drop"],
            security_opt=opts["security_opt"],
            init=opts["init"],
            pids_limit=opts["pids_limit"],
            nano_cpus=opts["nano_cpus"],
            mem_limit=opts["mem_limit"],
            memswap_limit=opts["memswap_limit"],
            network_mode=opts["network_mode"],
            ipc_mode=opts["ipc_mode"],
        )
        try:
            created = api.create_container(
                image,
                command=opts["command"],
                entrypoint=opts["entrypoint"],
                name=opts["name"],
                labels=opts["labels"],
                environment=opts["environment"],
                working_dir=opts["working_dir"],
                user=opts["user"],
                stop_signal=opts["stop_signal"],
                volumes=[v["bind"] for v in binds.values()],
                host_config=host_config,
                network_disabled=opts["network_mode"] == "none",
            )
        except requests.exceptions.ConnectionError as exc:
            raise ServiceUnavailable(
                f"Docker Engine unreachable at {self.url}: {_short(exc)}"
            ) from None
        return str(created["Id"])

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        import docker

        try:
            info: dict[str, Any] = self._api(self.client.api.inspect_container, ref)
        except docker.errors.NotFound:
            return None
        return info

    def _exit(self, ref: str, info: dict[str, Any]) -> Exit:
        st = info.get("State", {})
        code = int(st.get("ExitCode", -1))
        finished = _ts(st.get("FinishedAt"))
        limit = info.get("HostConfig", {}).get("Memory") or 0
        if ref in self._deadline:
            return Exit("deadline", code, "activeDeadlineSeconds exceeded; killed", finished)
        if ref in self._stopped and code != 85:
            return Exit("stopped", code, f"stopped (exit {code})", finished)
        why = cgroups.judge_oom(self.oom_evidence(ref, info), code)
        if why is not None and code != 0:
            return Exit("oom", code, f"out of memory (limit {limit} bytes): {why}", finished)
        if why is not None:
            return Exit.from_code(
                0,
                detail=f"a process in the job was OOM-killed ({why}); the main process exited 0",
                finished=finished,
            )
        if code == 137:
            return Exit("exit-code", code, "killed by SIGKILL (137)", finished)
        if st.get("Error"):
            return Exit("error", code, str(st["Error"])[:300], finished)
        return Exit.from_code(code, finished=finished)

    def wait(self, handle: Handle, timeout: float | None = None) -> Exit | None:
        """Block on the Engine's own wait (``POST /containers/ID/wait``) in steps of at
        most 5 s (the deadline, the timeout), inspecting only when it returned or a step
        ran out: a job that ends costs one wait and one inspect, no polling."""
        import docker
        import requests

        end = None if timeout is None else time.monotonic() + timeout
        inspect = timeout is not None and timeout <= 0  # a bare check: look first
        outage: float | None = None  # since when the engine has not answered
        grace = ENGINE_GRACE
        pause = 0.05
        while True:
            if inspect:
                try:
                    info = self._inspect(handle.ref)
                except ServiceUnavailable:
                    if timeout is not None:
                        raise  # a bounded look (reconcile): nothing can be learnt now
                    # The daemon went away (a restart): wait for it to come back, bounded.
                    now_m = time.monotonic()
                    if outage is None:
                        outage, grace = now_m, self._engine_grace()
                    if now_m - outage >= grace:
                        return Exit(
                            "lost",
                            None,
                            f"the Docker Engine at {self.url} did not answer for {grace:g} s"
                            " during the attempt",
                        )
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                if info is None:
                    if outage is not None:
                        return Exit(
                            "interrupted",
                            None,
                            "the Docker Engine restarted; the container is gone",
                        )
                    return Exit("lost", None, "the container is gone")
                st = info.get("State", {})
                if not st.get("Running") and st.get("Status") in ("exited", "dead"):
                    result = self._exit(handle.ref, info)
                    if outage is not None:
                        return self._interrupted(result)
                    return result
                # Still running: an engine that came back with it (live-restore) did
                # not interrupt it; a later end is its own.
                outage, pause = None, 0.05
            inspect = True
            now = time.time()
            if handle.deadline is not None and now >= handle.deadline:
                self._deadline.add(handle.ref)
                self._kill(handle.ref, "SIGKILL")
                self._wait_exit(handle.ref, 10.0)
                info = self._inspect(handle.ref) or {}
                return self._exit(handle.ref, info)
            step = 5.0
            if handle.deadline is not None:
                step = min(step, handle.deadline - now)
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                step = min(step, left)
            step = max(step, 0.01)
            # The SDK raises requests' ReadTimeout/ConnectionError when a step runs out.
            with contextlib.suppress(
                requests.exceptions.ReadTimeout,
                requests.exceptions.ConnectionError,
                docker.errors.NotFound,
                ServiceUnavailable,  # no client yet and no engine: the inspect decides
            ):
                self.client.api.wait(handle.ref, timeout=step)

    def _engine_grace(self) -> float:
        """How long an attempt waits for an engine that stopped answering (a daemon
        restart) before it is given up as ``lost``: ``jobs.engine_grace`` (default 60 s)."""
        from fogctl.state import State

        try:
            return max(float(State().config.get("jobs.engine_grace", ENGINE_GRACE)), 0.0)
        except (TypeError, ValueError):
            raise InvalidInput("jobs.engine_grace: expected a number of seconds") from None

    @staticmethod
    def _interrupted(result: Exit) -> Exit:
        """An attempt that ended while the engine was away: killed by a signal (the
        daemon stops its containers when it shuts down) or by the engine itself is an
        ``interrupted`` attempt, retried per backoffLimit; a job that completed or
        checkpointed (exit 85) in the meantime keeps that result."""
        code = result.exit_code
        killed = code is None or code > 128 or result.reason in ("error", "lost")
        if result.reason in ("exit-code", "error", "lost") and killed:
            how = "" if code is None else f" (exit {code})"
            return Exit(
                "interrupted",
                code,
                f"the Docker Engine restarted during the attempt and stopped the container{how}",
                result.finished,
            )
        return result

    def _wait_exit(self, ref: str, timeout: float) -> bool:
        """Block on the Engine's wait until the container is not running (True) or
        ``timeout`` passes (False): no polling."""
        import docker
        import requests

        try:
            self._api(self.client.api.wait, ref, timeout=max(timeout, 0.01))
        except docker.errors.NotFound:
            return True
        except ServiceUnavailable:  # requests' timeout surfaces as a ConnectionError
            info = self._inspect(ref)
            return info is None or not info.get("State", {}).get("Running")
        except requests.exceptions.ReadTimeout:
            return False
        return True

    def _kill(self, ref: str, signal: str) -> None:
        import docker

        with contextlib.suppress(docker.errors.NotFound, OperationFailed):
            self._api(self.client.api.kill, ref, signal=signal)

    def stop(self, handle: Handle, signal: str = "SIGTERM", grace: float = 10.0) -> None:
        self._stopped.add(handle.ref)
        self._kill(handle.ref, signal)
        if not self._wait_exit(handle.ref, grace):
            self._kill(handle.ref, "SIGKILL")
            self._wait_exit(handle.ref, 10.0)

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[bytes]:
        import docker

        try:
            stream = self._api(
                self.client.api.logs,
                handle.ref,
                stream=True,
                follow=follow,
                stdout=True,
                stderr=True,
            )
        except docker.errors.NotFound:
            return
        yield from stream

    def remove(self, handle: Handle) -> None:
        import docker

        with contextlib.suppress(docker.errors.NotFound, OperationFailed):
            self._api(self.client.api.remove_container, handle.ref, force=True)
        self._stopped.discard(handle.ref)
        self._deadline.discard(handle.ref)
        self._oom.pop(handle.ref, None)

    def find(self, labels: Mapping[str, str]) -> list[Running]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()] or [f"{LABEL_MANAGED}=1"]}
        out: list[Running] = []
        for c in self._api(self.client.containers.list, all=True, filters=filters):
            lab = c.labels or {}
            started = _ts(c.attrs.get("State", {}).get("StartedAt")) or 0.0
            out.append(
                Running(
                    Handle(self.name, c.id, lab.get(LABEL_RUN, ""), started),
                    lab.get(LABEL_JOB, ""),
                    c.status == "running",
                )
            )
        return out

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
