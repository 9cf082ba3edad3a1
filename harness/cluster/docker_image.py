"""The image the docker provider runs, built here from a Dockerfile shipped with the package.

The tag carries the Dockerfile's content hash, so a built image is reused until the
Dockerfile changes, and two versions of the harness never run each other's image.
One Dockerfile serves every PostgreSQL major a Debian release packages (the tag
starts with the major; :mod:`harness.cluster.versions` says which release). The
base is ``debian:<release>-slim`` where a registry answers; where none does, it
is a minimal one made with mmdebstrap from Debian's mirror, imported once per
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

from harness.cluster.versions import RELEASES, release_for
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
    "image_for",
]

REGISTRY_BASE = "debian:bookworm-slim"
DEFAULT_PG_VERSION = 15
LABEL_DOCKERFILE = "org.pgcutover.dockerfile-sha256"


def dockerfile() -> bytes:
    return resources.files("harness.cluster").joinpath("image/Dockerfile").read_bytes()


def image_for(pg_version: int) -> str:
    """The tag of the image for PostgreSQL ``pg_version``: the major, then the Dockerfile's hash."""
    return f"pgcutover/postgres:{pg_version}-{hashlib.sha256(dockerfile()).hexdigest()[:12]}"


DEFAULT_IMAGE = image_for(DEFAULT_PG_VERSION)


def _bases(pg_version: int) -> tuple[str, str, str]:
    """(the registry's base, the mmdebstrap one, the Debian release) for ``pg_version``."""
    suite = release_for(pg_version).suite or ""
    return f"debian:{suite}-slim", f"pgcutover/debian:{suite}-minbase", suite


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


def _mmdebstrap_base(
    client: docker.DockerClient, *, pg_version: int, why: str, progress: Progress
) -> str:
    registry, minbase, suite = _bases(pg_version)
    if _has(client, minbase):
        progress(f"{registry} cannot be pulled ({why}); using {minbase}, made earlier")
        return minbase
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise ImageUnavailable(
            f"the base image {registry} cannot be pulled ({why}) and mmdebstrap, which "
            f"would make one from Debian's mirror, is not installed; apt-get install mmdebstrap, "
            f"or load a {registry} image into the engine (docker load -i FILE)"
        )
    progress(
        f"{registry} cannot be pulled ({why}); making the base {minbase} with "
        f"mmdebstrap from Debian's mirror (once per engine)"
    )
    with tempfile.TemporaryDirectory(prefix="pgcutover-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        done = subprocess.run(
            [tool, "--variant=minbase", "--quiet", suite, str(rootfs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-10:])
            raise ImageUnavailable(
                f"mmdebstrap could not make a {suite} root file system (exit {done.returncode}): "
                f"{tail}; check that Debian's mirror answers (apt-get update) and that this "
                "runs as root"
            )
        repository, _, tag = minbase.partition(":")
        client.api.import_image_from_file(str(rootfs), repository=repository, tag=tag)
    return minbase


def _choose_base(
    client: docker.DockerClient, *, pg_version: int, base: str | None, progress: Progress
) -> str:
    if base is not None:
        if not _has(client, base):
            why = _pull(client, base)
            if why is not None:
                raise ImageUnavailable(
                    f"the base image {base} is not on the engine and cannot be pulled ({why}); "
                    f"load it (docker load -i FILE), or leave --base out"
                )
        return base
    registry, _minbase, _suite = _bases(pg_version)
    if _has(client, registry):
        return registry
    why = _pull(client, registry)
    if why is None:
        progress(f"pulled {registry}")
        return registry
    return _mmdebstrap_base(client, pg_version=pg_version, why=why, progress=progress)


def _run_build(
    client: docker.DockerClient, *, pg_version: int, image: str, base: str, progress: Progress
) -> None:
    text = dockerfile()
    # The Dockerfile needs no context (no COPY): send it alone. Host networking lets
    # apt-get reach the mirror the way this machine does, with no bridge or NAT.
    stream: Any = client.api.build(
        fileobj=io.BytesIO(text),
        tag=image,
        buildargs={"BASE": base, "PG_MAJOR": str(pg_version)},
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
                f"check that {base} is a Debian {_bases(pg_version)[2]} with a shell and "
                "apt-get and that "
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
    pg_version: int = DEFAULT_PG_VERSION,
    base: str | None = None,
    force: bool = False,
    progress: Progress,
) -> BuildResult:
    """Build :func:`image_for` ``pg_version`` unless the engine has it already (or ``force``)."""
    started = time.perf_counter()
    image = image_for(pg_version)
    if not force and _has(client, image):
        progress(f"{image} is up to date (tag = the Dockerfile's content hash)")
        return BuildResult(image, "", cached=True, seconds=time.perf_counter() - started)
    chosen = _choose_base(client, pg_version=pg_version, base=base, progress=progress)
    progress(f"building {image} on {chosen}")
    _run_build(client, pg_version=pg_version, image=image, base=chosen, progress=progress)
    seconds = time.perf_counter() - started
    progress(f"built {image} in {seconds:.1f} sec")
    return BuildResult(image, chosen, cached=False, seconds=seconds)


def ensure_image(client: docker.DockerClient, image: str, *, progress: Progress) -> None:
    """Have ``image`` on the engine: build ours, pull any other; or say why it cannot be."""
    if _has(client, image):
        return
    ours = {image_for(r.pg_major): r.pg_major for r in RELEASES.values() if r.suite}
    if image in ours:
        build_image(client, pg_version=ours[image], progress=progress)
        return
    progress(f"pulling {image}")
    why = _pull(client, image)
    if why is not None:
        raise ImageUnavailable(
            f"the image {image} is not on the Docker engine and cannot be pulled ({why}); "
            f"load it (docker load -i FILE), or leave --image out to run {DEFAULT_IMAGE}, "
            "which harness image build makes from Debian's packages"
        )
