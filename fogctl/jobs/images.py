"""Local test/example images built with no registry: ``docker import`` of a rootfs."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

from fogctl.errors import InvalidInput, OperationFailed
from fogctl.jobs.records import ImageRecord

__all__ = ["build_busybox_image", "busybox_rootfs"]


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 0
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def busybox_rootfs(busybox: str | Path = "/bin/busybox") -> bytes:
    """A tar of a minimal rootfs: /bin/busybox, one symlink per applet, /etc/passwd
    (root and nobody 65534), /tmp, /work. Deterministic (mtime 0)."""
    path = Path(busybox)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(
            f"{path}: cannot read a static busybox ({exc.strerror}); install busybox-static"
        ) from None
    try:
        applets = subprocess.run(
            [str(path), "--list"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise InvalidInput(f"{path}: not a runnable busybox: {exc}") from None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "work", "ckpt", "proc", "sys", "dev"):
            _add_dir(tar, d)
        _add_dir(tar, "tmp", 0o1777)
        _add_file(tar, "bin/busybox", data, 0o755)
        for applet in sorted(set(applets)):
            if applet == "busybox" or "/" in applet:
                continue
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            info.mtime = 0
            tar.addfile(info)
        _add_file(
            tar,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
        )
        _add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def build_busybox_image(
    tag: str = "fogctl/busybox:1", busybox: str | Path = "/bin/busybox"
) -> ImageRecord:
    """Import a busybox rootfs as ``tag`` through the Docker Engine API."""
    from fogctl.jobs.executors.docker import docker_client

    repo, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    data = busybox_rootfs(busybox)
    client = docker_client()
    t0 = time.monotonic()
    try:
        out = client.api.import_image_from_data(
            data, repository=repo, tag=version, changes=['CMD ["sh"]', "WORKDIR /work"]
        )
    except Exception as exc:
        raise OperationFailed(f"docker import failed: {exc}") from None
    image_id = ""
    for line in str(out).splitlines():
        with_status = line.strip()
        if not with_status:
            continue
        try:
            image_id = json.loads(with_status).get("status", image_id)
        except json.JSONDecodeError:
            continue
    img = client.images.get(f"{repo}:{version}")
    return ImageRecord(
        tag=f"{repo}:{version}",
        id=img.id or image_id,
        size=int(img.attrs.get("Size") or 0),
        seconds=round(time.monotonic() - t0, 3),
    )
