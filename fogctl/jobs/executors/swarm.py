"""The Docker Swarm executor: each attempt is a one-task service (restart condition none).

One swarm manager then spreads jobs over the machines users already run. The task gets
the same hardening as :mod:`.docker` (nobody user, read-only root, tmpfs /tmp, all
capabilities dropped, an init), CPU/memory reservations (the spec's requests) and
limits, the node-local ``none`` network unless ``network: bridge``, and a placement
constraint ``node.labels.io.fogctl.node == <node>`` when the job comes from an
assignment (label swarm nodes with ``docker node update --label-add
io.fogctl.node=<fogctl node id> NODE``).

Measured behaviour it handles: a service given a tag tries a registry pull first, so
it is given the local image id; a missing image shows as a task in state
``rejected`` with no exit code (reason ``rejected``); swarm logs interleave stdout and
stderr. The work and checkpoint dirs are bind mounts, so they are on the manager's
disk: jobs with inputs, outputs or checkpoints belong on a one-node swarm or on nodes
sharing that path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from fogctl.errors import InvalidInput, OperationFailed
from fogctl.jobs.executors.base import LABEL_JOB, LABEL_RUN, WORK_DIR, Exit, Handle, Launch, Running
from fogctl.jobs.executors.docker import (
    JOB_USER,
    DockerExecutor,
    _ts,
    container_name,
    job_env,
    job_labels,
)
from fogctl.records import ComponentStatus

__all__ = ["SwarmExecutor"]

_DONE = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


class SwarmExecutor(DockerExecutor):
    """Jobs as one-task Docker Swarm services."""

    name = "swarm"

    def available(self) -> ComponentStatus:
        status = super().available()
        if not status.reachable:
            return status
        try:
            info = self.client.info()
        except Exception as exc:
            return ComponentStatus(False, status.endpoint, f"docker info failed: {exc}")
        sw = info.get("Swarm", {})
        if sw.get("LocalNodeState") != "active" or not sw.get("ControlAvailable"):
            return ComponentStatus(
                False,
                status.endpoint,
                "this Docker Engine is not a swarm manager (docker swarm init)",
            )
        return ComponentStatus(
            True, status.endpoint, f"swarm manager, {sw.get('Nodes', '?')} node(s)"
        )

    def start(self, launch: Launch) -> Handle:
        from docker.types import (
            ContainerSpec,
            Mount,
            Placement,
            Resources,
            RestartPolicy,
            TaskTemplate,
        )

        spec = launch.spec
        if spec.image is None:
            raise InvalidInput(f"job {spec.id}: the swarm executor runs images; it names wasm")
        image = self._image(spec.image)
        mounts = [Mount(WORK_DIR, str(launch.workdir), type="bind")]
        if spec.checkpoint is not None and launch.checkpoint_dir is not None:
            mounts.append(Mount(spec.checkpoint.path, str(launch.checkpoint_dir), type="bind"))
        labels = job_labels(launch)
        cmd = list(spec.command) if spec.command else None
        container = ContainerSpec(
            image.id,
            command=cmd,
            args=list(spec.args) if spec.args else None,
            env=[f"{k}={v}" for k, v in job_env(launch).items()],
            workdir=WORK_DIR,
            user=JOB_USER,
            labels=labels,
            mounts=mounts,
            read_only=True,
            init=True,
            cap_drop=["ALL"],
            stop_signal=spec.checkpoint.signal if spec.checkpoint else "SIGTERM",
            stop_grace_period=int((spec.checkpoint.grace_seconds if spec.checkpoint else 10) * 1e9),
        )
        mem = launch.memory_cap
        resources = Resources(
            cpu_limit=max(1, int(launch.cpu_cap * 1e9)),
            mem_limit=mem,
            cpu_reservation=max(1, int(min(spec.cpu, launch.cpu_cap) * 1e9)),
            mem_reservation=min(spec.memory, mem),
        )
        resources["Limits"]["Pids"] = launch.pids_cap  # API 1.41 (Docker 20.10)
        constraints = [f"node.labels.io.fogctl.node=={spec.node}"] if spec.node else []
        name = container_name(launch.run_id, launch.labels)
        template = TaskTemplate(
            container,
            resources=resources,
            restart_policy=RestartPolicy(condition="none"),
            placement=Placement(constraints=constraints),
            networks=[name] if spec.network == "none" else None,
        )
        with contextlib.suppress(Exception):
            self.client.api.remove_service(name)
        if spec.network == "none":
            self._isolated_network(name, labels)
        try:
            created = self._api(self.client.api.create_service, template, name=name, labels=labels)
        except OperationFailed as exc:
            raise OperationFailed(f"job {spec.id}: service not created: {exc}") from None
        return Handle(self.name, created["ID"], launch.run_id, time.time(), launch.deadline)

    def _isolated_network(self, name: str, labels: Mapping[str, str]) -> None:
        """A per-attempt internal overlay network: swarm services cannot use the
        ``none`` network (20.10), and with no network a task lands on the default
        bridge. An internal network has no route out and no other members."""
        import docker

        with contextlib.suppress(docker.errors.NotFound, OperationFailed):
            self._api(self.client.api.remove_network, name)
        self._api(
            self.client.api.create_network,
            name,
            driver="overlay",
            internal=True,
            labels=dict(labels),
            check_duplicate=True,
        )

    def _task(self, ref: str) -> dict[str, Any] | None:
        import docker

        try:
            tasks = self._api(self.client.api.tasks, filters={"service": ref})
        except docker.errors.NotFound:
            return None
        if not tasks:
            return {}
        tasks.sort(key=lambda t: t.get("CreatedAt", ""))
        task: dict[str, Any] = tasks[-1]
        return task

    def _service_exists(self, ref: str) -> bool:
        import docker

        try:
            self._api(self.client.api.inspect_service, ref)
        except docker.errors.NotFound:
            return False
        return True

    def _task_exit(self, ref: str, task: dict[str, Any]) -> Exit:
        st = task.get("Status", {})
        state = st.get("State", "")
        code = st.get("ContainerStatus", {}).get("ExitCode")
        finished = _ts(st.get("Timestamp"))
        if ref in self._deadline:
            return Exit("deadline", code, "activeDeadlineSeconds exceeded; removed", finished)
        if state == "rejected":
            return Exit("rejected", None, str(st.get("Err") or "rejected by the swarm"), finished)
        if ref in self._stopped and code != 85:
            return Exit("stopped", code, "stopped", finished)
        if code is None:
            return Exit(
                "error", None, f"task ended {state}: {st.get('Err') or ''}".strip(), finished
            )
        if code == 137 and "oom" in str(st.get("Err", "")).lower():
            return Exit("oom", code, "out of memory", finished)
        return Exit.from_code(int(code), finished=finished)

    def wait(self, handle: Handle, timeout: float | None = None) -> Exit | None:
        end = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while True:
            task = self._task(handle.ref)
            if task is None or (not task and not self._service_exists(handle.ref)):
                return Exit("lost", None, "the service is gone")
            if task and task.get("Status", {}).get("State") in _DONE:
                return self._task_exit(handle.ref, task)
            if handle.deadline is not None and time.time() >= handle.deadline:
                self._deadline.add(handle.ref)
                self._remove_and_wait(handle.ref)
                return Exit("deadline", None, "activeDeadlineSeconds exceeded; removed")
            if end is not None and time.monotonic() >= end:
                return None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _container(self, ref: str) -> str | None:
        task = self._task(ref) or {}
        cid = task.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
        return str(cid) if cid else None

    def _remove_and_wait(self, ref: str) -> None:
        import docker

        name = None
        with contextlib.suppress(docker.errors.NotFound, OperationFailed):
            name = self._api(self.client.api.inspect_service, ref)["Spec"]["Name"]
        with contextlib.suppress(docker.errors.NotFound, OperationFailed):
            self._api(self.client.api.remove_service, ref)
        if name is not None:
            self._remove_network(str(name))

    def _remove_network(self, name: str) -> None:
        import docker

        # The network is in use until the task's container is gone: retry briefly.
        end = time.monotonic() + 10.0
        while time.monotonic() < end:
            try:
                self._api(self.client.api.remove_network, name)
                return
            except docker.errors.NotFound:
                return
            except OperationFailed:
                time.sleep(0.1)

    def stop(self, handle: Handle, signal: str = "SIGTERM", grace: float = 10.0) -> None:
        self._stopped.add(handle.ref)
        cid = self._container(handle.ref)
        if cid is not None:  # a task on this node: signal it like a container
            self._kill(cid, signal)
            end = time.monotonic() + grace
            while time.monotonic() < end:
                task = self._task(handle.ref) or {}
                if task.get("Status", {}).get("State") in _DONE:
                    return
                time.sleep(0.05)
        self._remove_and_wait(handle.ref)

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[bytes]:
        import docker

        try:
            stream = self._api(
                self.client.api.service_logs,
                handle.ref,
                follow=follow,
                stdout=True,
                stderr=True,
                is_tty=False,
            )
        except docker.errors.NotFound:
            return
        yield from stream

    def remove(self, handle: Handle) -> None:
        self._remove_and_wait(handle.ref)
        self._stopped.discard(handle.ref)
        self._deadline.discard(handle.ref)

    def find(self, labels: Mapping[str, str]) -> list[Running]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        out: list[Running] = []
        for svc in self._api(self.client.api.services, filters=filters):
            lab = svc.get("Spec", {}).get("Labels", {}) or {}
            started = _ts(svc.get("CreatedAt")) or 0.0
            out.append(
                Running(
                    Handle(self.name, svc["ID"], lab.get(LABEL_RUN, ""), started),
                    lab.get(LABEL_JOB, ""),
                    True,
                )
            )
        return out
