"""The image the docker provider runs, built here from a Dockerfile shipped with the package.

The tag carries the Dockerfile's content hash, so a built image is reused until the
Dockerfile changes, and two versions of the harness never run each other's image.
The base is ``debian:bookworm-slim`` where a registry answers; where none does, it
is a minimal bookworm made with mmdebstrap from Debian's mirror, imported once per
engine and reused.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ImageUnavailable
from harness.progress import Progress

if TYPE_CHECKING:
    import docker

__all__ = [
    "DEFAULT_IMAGE",
    "REGISTRY_BASE",
    "BuildResult",
    "build_image",
    "dockerfile",
    "ensure_image",
]

REGISTRY_BASE = "debian:bookworm-slim"
MMDEBSTRAP_BASE = "pgcutover/debian:bookworm-minbase"
SUITE = "bookworm"
LABEL_DOCKERFILE = "org.pgcutover.dockerfile-sha256"


def dockerfile() -> bytes:
    return resources.files("harness.cluster").joinpath("image/Dockerfile").read_bytes()


def _default_image() -> str:
    return f"pgcutover/postgres:15-{hashlib.sha256(dockerfile()).hexdigest()[:12]}"


DEFAULT_IMAGE = _default_image()


@dataclass(frozen=True)
class BuildResult:
    image: str
    base: str
    cached: bool
    seconds: float


def _has(client: docker.DockerClient, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: docker.DockerClient, image: str) -> str | None:
    """None once ``image`` is on the engine; otherwise why it could not be pulled."""
    import docker

    repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    try:
        client.images.pull(repository, tag=tag or "latest")
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    return None


def _mmdebstrap_base(client: docker.DockerClient, *, why: str, progress: Progress) -> str:
    if _has(client, MMDEBSTRAP_BASE):
        progress(f"{REGISTRY_BASE} cannot be pulled ({why}); using {MMDEBSTRAP_BASE}, made earlier")
        return MMDEBSTRAP_BASE
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise ImageUnavailable(
            f"the base image {REGISTRY_BASE} cannot be pulled ({why}) and mmdebstrap, which "
            f"would make one from Debian's mirror, is not installed; apt-get install mmdebstrap, "
            f"or load a {REGISTRY_BASE} image into the engine (docker load -i FILE)"
        )
    progress(
        f"{REGISTRY_BASE} cannot be pulled ({why}); making the base {MMDEBSTRAP_BASE} with "
        f"mmdebstrap from Debian's mirror (once per engine)"
    )
    with tempfile.TemporaryDirectory(prefix="pgcutover-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        done = subprocess.run(
            [tool, "--variant=minbase", "--quiet", SUITE, str(rootfs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-10:])
            raise ImageUnavailable(
                f"mmdebstrap could not make a {SUITE} root file system (exit {done.returncode}): "
                f"{tail}; check that Debian's mirror answers (apt-get update) and that this "
                "runs as root"
            )
        repository, _, tag = MMDEBSTRAP_BASE.partition(":")
        client.api.import_image_from_file(str(rootfs), repository=repository, tag=tag)
    return MMDEBSTRAP_BASE


def _choose_base(client: docker.DockerClient, *, base: str | None, progress: Progress) -> str:
    if base is not None:
        if not _has(client, base):
            why = _pull(client, base)
            if why is not None:
                raise ImageUnavailable(
                    f"the base image {base} is not on the engine and cannot be pulled ({why}); "
                    f"load it (docker load -i FILE), or leave --base out"
                )
        return base
    if _has(client, REGISTRY_BASE):
        return REGISTRY_BASE
    why = _pull(client, REGISTRY_BASE)
    if why is None:
        progress(f"pulled {REGISTRY_BASE}")
        return REGISTRY_BASE
    return _mmdebstrap_base(client, why=why, progress=progress)


def _run_build(client: docker.DockerClient, *, image: str, base: str, progress: Progress) -> None:
    text = dockerfile()
    # The Dockerfile needs no context (no COPY): send it alone. Host networking lets
    # apt-get reach the mirror the way this machine does, with no bridge or NAT.
    stream: Any = client.api.build(
        fileobj=io.BytesIO(text),
        tag=image,
        buildargs={"BASE": base},
        network_mode="host",
        rm=True,
        forcerm=True,
        decode=True,
        labels={LABEL_DOCKERFILE: hashlib.sha256(text).hexdigest()},
    )
    log: list[str] = []
    for chunk in stream:
        if "error" in chunk:
            tail = "\n".join(log[-15:])
            raise ImageUnavailable(
                f"could not build {image} on {base}: {str(chunk['error']).strip()}\n{tail}\n"
                f"check that {base} is a Debian bookworm with a shell and apt-get and that "
                "Debian's mirror answers from this machine (apt-get update), or build the "
                "image where it does and docker save / docker load it here"
            )
        line = str(chunk.get("stream", "")).rstrip()
        if line:
            log.append(line)
            if line.startswith("Step "):
                progress(f"image build: {line}")


def build_image(
    client: docker.DockerClient,
    *,
    base: str | None = None,
    force: bool = False,
    progress: Progress,
) -> BuildResult:
    """Build :data:`DEFAULT_IMAGE` unless the engine has it already (or ``force``)."""
    started = time.perf_counter()
    if not force and _has(client, DEFAULT_IMAGE):
        progress(f"{DEFAULT_IMAGE} is up to date (tag = the Dockerfile's content hash)")
        return BuildResult(DEFAULT_IMAGE, "", cached=True, seconds=time.perf_counter() - started)
    chosen = _choose_base(client, base=base, progress=progress)
    progress(f"building {DEFAULT_IMAGE} on {chosen}")
    _run_build(client, image=DEFAULT_IMAGE, base=chosen, progress=progress)
    seconds = time.perf_counter() - started
    progress(f"built {DEFAULT_IMAGE} in {seconds:.1f} sec")
    return BuildResult(DEFAULT_IMAGE, chosen, cached=False, seconds=seconds)


def ensure_image(client: docker.DockerClient, image: str, *, progress: Progress) -> None:
    """Have ``image`` on the engine: build ours, pull any other; or say why it cannot be."""
    if _has(client, image):
        return
    if image == DEFAULT_IMAGE:
        build_image(client, progress=progress)
        return
    progress(f"pulling {image}")
    why = _pull(client, image)
    if why is not None:
        raise ImageUnavailable(
            f"the image {image} is not on the Docker engine and cannot be pulled ({why}); "
            f"load it (docker load -i FILE), or leave --image out to run {DEFAULT_IMAGE}, "
            "which harness image build makes from Debian's packages"
        )
