"""Packaging: light import, public API, wheel contents, and import from the built wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "vllm", "llama_cpp", "matplotlib", "ray")


def test_import_is_light() -> None:
    code = (
        "import sys, music_aug, music_aug.backends, music_aug.formats, music_aug.cli,"
        " music_aug.batches, music_aug.cli.augment;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import music_aug pulled in: {out.stdout.strip()}"


def test_ray_module_without_ray_names_the_extra() -> None:
    code = "import sys; sys.modules['ray'] = None; import music_aug.ray"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "MissingDependencyError" in out.stderr and "music-aug[ray]" in out.stderr


def test_public_names() -> None:
    import music_aug

    for name in music_aug.__all__:
        assert hasattr(music_aug, name), name
    for name in ("Conversation", "PreferencePair", "MusicAugError"):
        assert name in music_aug.__all__


def test_cli_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "music_aug.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "music-aug" in out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out_dir),
            str(REPO_ROOT),
        ],
        check=True,
    )
    (found,) = out_dir.glob("music_aug-*.whl")
    return found


def test_wheel_ships_typing_marker_and_package_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "music_aug/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "music-aug = music_aug.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    templates = [n for n in names if n.startswith("music_aug/templates/")]
    data = [n for n in names if n.startswith("music_aug/data/")]
    assert templates, "prompt templates must ship as package data"
    assert data, "the demo slice must ship as package data"


def test_import_from_installed_wheel_only(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel into a folder and import it with no access to the source tree."""
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    deps = sysconfig.get_paths()["purelib"]
    code = (
        "import music_aug, sys;"
        "from music_aug import Conversation, PreferencePair, MusicAugError;"
        "print(music_aug.__file__)"
    )
    # -S skips site-packages .pth files, so the editable install cannot leak the source tree in.
    env = {"PYTHONPATH": f"{target}:{deps}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target))
