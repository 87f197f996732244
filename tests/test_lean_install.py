"""The classic path works without the optional extras (generative, video, rembg, gpu) and torch.

Each check runs the real ``packshot`` command in a fresh interpreter where importing any package of
the extras fails as it does when the package is not installed (a ``sitecustomize`` meta-path hook).
docs/benchmarks.md has the install size of such a lean venv, measured with a real install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.studio import write_catalog

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("torch", "torchvision", "torchao", "diffusers", "transformers", "accelerate", "peft",
            "safetensors", "segment_anything", "runwayml", "openai", "av", "rembg", "onnxruntime")

SITECUSTOMIZE = f"""
import sys

BLOCKED = {OPTIONAL!r}


class NotInstalled:
    '''Importing a package of an extra fails as it does when the package is not installed.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def _packshot(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    environ = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "COLUMNS": "60",
               "PACKSHOT_EXPORT__PRESETS_FILE": str(ROOT / "tests/small_presets.yaml"), **(env or {})}
    code = "import sys; from cli.main import app; sys.argv[0] = 'packshot'; app()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=environ, timeout=400)


def _one_line(done: subprocess.CompletedProcess) -> str:
    return " ".join((done.stdout + done.stderr).split())


@pytest.mark.slow
def test_classic_run_and_validate_need_no_extra(prefect_api, tmp_path):
    rows = [{"sku": "MUG-1", "shape": "mug"}, {"sku": "BALL-2", "shape": "ball"}]
    catalog = write_catalog(tmp_path / "cat", rows)
    validate = _packshot(tmp_path, "validate", str(catalog))
    assert validate.returncode == 0, _one_line(validate)
    out = tmp_path / "out"
    from prefect.settings import PREFECT_API_URL

    api = {"PREFECT_API_URL": PREFECT_API_URL.value()}  # the session's server: no second one to start
    run = _packshot(tmp_path, "run", str(catalog), "--out", str(out), "--stages", "segment,export",
                    "--presets", "test-shop", env=api)
    assert "Traceback" not in run.stdout + run.stderr, run.stderr[-3000:]
    assert "done 2" in _one_line(run), _one_line(run)[-2000:]
    for sku in ("MUG-1", "BALL-2"):
        assert (out / sku / "cutout.png").is_file()
        assert (out / sku / "packshot-test-shop.jpg").is_file()
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize("setting,value,extra", [
    ("PACKSHOT_SEGMENT__BACKEND", "sam", "generative"),
    ("PACKSHOT_SEGMENT__BACKEND", "rembg", "rembg"),
])
def test_a_backend_whose_extra_is_missing_is_one_line_naming_it(tmp_path, setting, value, extra):
    photos = tmp_path / "photos"
    write_catalog(photos, [{"sku": "A-1"}])
    done = _packshot(tmp_path, "segment", str(photos / "images"), "--out", str(tmp_path / "cut"),
                     env={setting: value})
    output = _one_line(done)
    assert done.returncode != 0
    assert "Traceback" not in output
    assert f"pip install 'packshot[{extra}]'" in output, output[-1500:]


def test_auto_skips_a_configured_backend_whose_extra_is_missing_and_naming_it_fails_in_one_line():
    from packshot.backends import BackendSpec, BackendTable
    from packshot.extras import MissingExtraError

    table: BackendTable[dict, str] = BackendTable("segment", "PACKSHOT_SEGMENT__BACKEND")
    table.register(BackendSpec("learned", lambda s, d: "learned", "needs an extra",
                               unavailable=lambda s: None if s.get("weights") else "no weights configured",
                               extra="learned", modules=("packshot_no_such_package",)))
    table.register(BackendSpec("classic", lambda s, d: "classic", "no weights"))
    unconfigured = table.create("auto", {}, "cpu")[1]
    assert unconfigured == ["segment: auto chose classic (not learned: no weights configured)"]
    backend, notes = table.create("auto", {"weights": "w.onnx"}, "cpu")
    assert backend == "classic"
    missing = "not learned: packshot_no_such_package is not installed (pip install 'packshot[learned]')"
    assert missing in notes[0]
    with pytest.raises(MissingExtraError) as info:
        table.create("learned", {"weights": "w.onnx"}, "cpu")
    assert str(info.value) == ("PACKSHOT_SEGMENT__BACKEND=learned needs the 'learned' extra "
                               "(packshot_no_such_package is not installed): pip install 'packshot[learned]'")
