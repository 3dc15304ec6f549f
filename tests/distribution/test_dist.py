"""The sdist and the wheel, built as a release builds them (hatchling's PEP 517 hooks).

The sdist must carry what it takes to build, test and document the package and nothing of the
repository's own machinery (benchmark results, CI scripts, VCS files); a wheel built from the
sdist alone must be complete; the metadata must make a good package index page: license,
classifiers, URLs, and a long description whose links work away from the repository.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path, PurePosixPath

import pytest

import tether

ROOT = Path(__file__).resolve().parents[2]

BUILD = "import sys, hatchling.build as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"

#: Repository paths that must never reach the sdist.
NOT_IN_SDIST = ("benchmarks/results", ".ci", ".git")
#: File names that must never reach either distribution.
NEVER_SHIPPED = {".gitignore", ".hgignore", "__pycache__", "node_modules"}


def build(hook: str, source: Path, out: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-c", BUILD, hook, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The sdist, the sdist unpacked, and a wheel built from the unpacked sdist."""
    out = tmp_path_factory.mktemp("dist")
    sdist = build("build_sdist", ROOT, out)
    unpacked = out / "unpacked"
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    (source,) = unpacked.iterdir()
    wheel = build("build_wheel", source, out)
    return sdist, source, wheel


def sdist_files(sdist: Path) -> list[PurePosixPath]:
    with tarfile.open(sdist) as tar:
        # Every member sits under "tether-VERSION/".
        return [PurePosixPath(*PurePosixPath(m.name).parts[1:]) for m in tar.getmembers()]


def metadata(text: str) -> Message:
    return Parser().parsestr(text)


def test_the_sdist_has_no_benchmark_results_ci_or_vcs_files(
    dist: tuple[Path, Path, Path],
) -> None:
    files = sdist_files(dist[0])
    for path in files:
        text = path.as_posix()
        assert not any(text == p or text.startswith(p + "/") for p in NOT_IN_SDIST), text
        assert not NEVER_SHIPPED & set(path.parts), text
        assert path.suffix not in {".pyc", ".pyo"}, text
    for needed in ("pyproject.toml", "LICENSE", "README.md", "mkdocs.yml", "src/tether/py.typed"):
        assert PurePosixPath(needed) in files, needed
    for folder in ("tests", "specs", "docs", "examples"):
        assert any(p.parts[0] == folder for p in files), folder


def test_the_wheel_built_from_the_sdist_is_the_package(dist: tuple[Path, Path, Path]) -> None:
    with zipfile.ZipFile(dist[2]) as wheel:
        names = wheel.namelist()
        info = f"tether-{tether.__version__}.dist-info"
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        meta = metadata(wheel.read(f"{info}/METADATA").decode())
    assert {name.split("/")[0] for name in names} == {"tether", info}
    assert "tether/py.typed" in names
    assert f"{info}/licenses/LICENSE" in names
    assert not any(NEVER_SHIPPED & set(name.split("/")) for name in names)
    assert "tether = tether.cli:main" in entry_points
    assert meta["Version"] == tether.__version__


def test_the_metadata_makes_a_package_index_page(dist: tuple[Path, Path, Path]) -> None:
    meta = metadata((dist[1] / "PKG-INFO").read_text(encoding="utf-8"))
    assert meta["Name"] == "tether"
    assert meta["Version"] == tether.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "tether contributors" in meta["Author"]
    assert meta["Requires-Python"] == ">=3.10"
    assert "socket.io" in meta["Keywords"].split(",")
    classifiers = meta.get_all("Classifier") or []
    for wanted in ("Framework :: AsyncIO", "Framework :: Trio", "Typing :: Typed"):
        assert wanted in classifiers
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Repository", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values()), urls
    assert meta["Description-Content-Type"] == "text/markdown"
    long_description = meta.get_payload()
    assert isinstance(long_description, str)
    check_long_description(long_description)


def check_long_description(text: str) -> None:
    # It opens with the install command, right under the title.
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0] == "# tether"
    assert lines[1].startswith("```")
    assert lines[2].startswith("pip install tether "), lines[2]
    # Links and images resolve on a package index page: absolute, or an anchor of the page.
    targets = re.findall(r"\]\(([^)\s]+)", text) + re.findall(r"<img[^>]*\bsrc=\"([^\"]+)", text)
    targets += re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, flags=re.MULTILINE)
    assert targets, "no links found: the pattern is wrong"
    relative = [t for t in targets if not t.startswith(("https://", "#"))]
    assert relative == [], relative
    assert all(not t.startswith("http://") for t in targets), "links must use https"
