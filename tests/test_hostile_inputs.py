"""Bad input, round two (issue 16): each test failed on the code before the fix."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.hostile_files import good_jpeg, iccp_bomb, png_bomb, ztxt_bomb

runner = CliRunner()
HEADER = "sku,title,image,category,brand_style,colors,bbox,recolor_mask\n"


def _catalog(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.csv"
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return path


def _validate(path: Path, *extra: str):
    result = runner.invoke(app, ["validate", str(path), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def _in_thread(fn, timeout: float = 20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) when it blocks, as open() on a FIFO."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked (a FIFO opened for reading?)"
    return box


def test_validate_names_bombs_and_png_chunk_bombs_per_row(tmp_path):
    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(png_bomb())
    (folder / "ztxt.png").write_bytes(ztxt_bomb())
    (folder / "iccp.png").write_bytes(iccp_bomb())
    (folder / "ok.jpg").write_bytes(good_jpeg())
    rows = ["B1,Bomb,bomb.png", "Z1,Text bomb,ztxt.png", "I1,ICC bomb,iccp.png", "OK,Fine,ok.jpg"]
    path = _catalog(folder, rows)
    result = _validate(path)
    assert result.exit_code == 1
    assert "1 product ready" in result.output
    for line, word in ((2, "too many pixels"), (3, "Decompressed data too large"), (4, "Decompressed data")):
        assert any(f"catalog.csv:{line}" in row and word in row for row in result.output.splitlines()), line


def test_check_reports_png_chunk_bombs_instead_of_crashing(tmp_path):
    for name, data in (("ztxt.png", ztxt_bomb()), ("iccp.png", iccp_bomb())):
        (tmp_path / name).write_bytes(data)
    result = runner.invoke(app, ["check", str(tmp_path / "ztxt.png"), str(tmp_path / "iccp.png"),
                                 "--preset", "shopify"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.count("FAIL") == 2 and "readable" in result.output


def test_overlong_image_path_is_a_row_error(tmp_path):
    path = _catalog(tmp_path / "cat", [f"LONG,Long name,{'x' * 300}.jpg"])
    result = _validate(path)
    assert result.exit_code == 1 and "longer than the file system allows" in result.output


def test_fifo_and_folder_images_are_row_errors_and_never_opened(tmp_path):
    from packshot.config import LoadSettings
    from packshot.errors import ImageLoadError
    from packshot.imageio import load_image

    folder = tmp_path / "cat"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")
    (folder / "dir.jpg").mkdir()
    path = _catalog(folder, ["F1,Fifo,pipe.jpg", "D1,Folder,dir.jpg"])
    box = _in_thread(lambda: _validate(path))
    assert "not a regular file" in box["value"].output and "is a folder" in box["value"].output
    for ref, words in (("pipe.jpg", "not a regular file"), ("dir.jpg", "is a folder")):
        box = _in_thread(lambda ref=ref: load_image(ref, folder, LoadSettings()))
        assert isinstance(box.get("error"), ImageLoadError) and words in str(box["error"])
    box = _in_thread(lambda: runner.invoke(app, ["check", str(folder / "pipe.jpg"), "--preset", "shopify"]))
    assert box["value"].exit_code == 1 and "not a regular file" in box["value"].output


def test_a_full_disk_is_one_clear_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    from orchestrator.manifest import ManifestWriter
    from packshot.schemas.results import ProductResult, RunManifest
    from packshot.storage import LocalStorage, StorageFullError, atomic_write

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    storage = LocalStorage(tmp_path / "out")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageFullError, match="the disk is full"):
        atomic_write(tmp_path / "out" / "a.png", b"x" * 10)
    with pytest.raises(StorageFullError, match="disk is full"), ManifestWriter(storage) as manifest:
        manifest.add(ProductResult(sku="A", status="done", source_file="c.csv", source_line=2))
        manifest.publish(RunManifest(catalog="c.csv", catalog_format="packshot", output=storage.uri,
                                     started="2026-01-01T00:00:00Z", stages=["segment"], presets=[],
                                     products=[]))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no manifest, no .tmp files


def test_run_option_typos_are_one_line_with_the_choices_before_prefect_starts(tmp_path, monkeypatch):
    path = _catalog(tmp_path / "cat", [])
    monkeypatch.setitem(sys.modules, "flows.catalog_run", None)  # importing the flow would fail the test
    result = runner.invoke(app, ["run", str(path), "--stages", "segmnt"])
    assert result.exit_code == 2, result.output
    assert "--stages 'segmnt'" in result.output and "'segment'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    result = runner.invoke(app, ["run", str(path), "--presets", "amazon-mian"])
    assert result.exit_code == 2 and "unknown preset(s) amazon-mian; choose from" in result.output
    assert "amazon-main" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("damage", [b"", b"{\"sku\": \"A\", \"sta", b"\x00\xff garbage", b"[1, 2]"])
def test_damaged_done_json_counts_as_absent_and_is_noted(tmp_path, damage):
    from orchestrator.keys import load_previous_result
    from packshot.storage import LocalStorage

    storage = LocalStorage(tmp_path)
    storage.write_bytes("A/.done.json", damage)
    notes: list[str] = []
    assert load_previous_result(storage, "A/.done.json", notes) is None
    assert load_previous_result(storage, "A/.done.json", notes) is None
    assert len(notes) == 1 and "damaged" in notes[0] and "made again" in notes[0]


def test_two_colors_with_the_same_slug_are_refused(tmp_path):
    from packshot.catalog import load_catalog

    rows = ["SKY,Shirt,a.jpg,,,Sky Blue=#87CEEB|sky-blue=#000000,,", "OK,Shirt,b.jpg,,,Navy,,"]
    path = _catalog(tmp_path, rows)
    catalog = load_catalog(path)
    assert [p.sku for p in catalog.products] == ["OK"]
    (error,) = catalog.errors
    assert error.line == 2 and "'Sky Blue' and 'sky-blue'" in error.message and "sky-blue" in error.message


def test_formula_cells_are_neutralised_in_manifest_csv():
    import csv
    import io

    from orchestrator.manifest import manifest_csv
    from packshot.csvsafe import safe_cell
    from packshot.schemas.results import ProductResult, RunManifest

    hostile = ["=1+2", "+SUM(1+1)", "@SUM(A1)", '=HYPERLINK("x")', "=cmd|' /C calc'!A0", "\t=1+1", "  =1",
               "-2+3", "\r=1"]
    manifest = RunManifest(catalog="c.csv", catalog_format="packshot", output="out", stages=[], presets=[],
                           started="2026-01-01T00:00:00Z",
                           products=[ProductResult(sku=s, status="failed", error=s, source_file=s,
                                                   source_line=2) for s in hostile])
    rows = list(csv.DictReader(io.StringIO(manifest_csv(manifest))))
    assert [r["sku"] for r in rows] == ["'" + s for s in hostile]
    assert all(r["error"].startswith("'") and r["source_file"].startswith("'") for r in rows)
    assert safe_cell("TEE-001") == "TEE-001" and safe_cell(-3) == -3 and safe_cell("a=b") == "a=b"


def test_bbox_outside_the_image_is_refused_by_validate_and_by_the_run(tmp_path):
    from orchestrator.checks import check_loaded_product
    from orchestrator.settings import get_settings
    from packshot.catalog import load_catalog
    from packshot.errors import PackshotError

    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(good_jpeg((64, 48)))
    path = _catalog(folder, ['IN,In,a.jpg,,,,"1,1,60,40",', 'PART,Part,a.jpg,,,,"10,10,200,40",',
                             'OUT,Out,a.jpg,,,,"100,100,120,120",'])
    result = _validate(path)
    assert result.exit_code == 1 and "2 products" not in result.output and "1 product ready" in result.output
    assert "partly outside the 64x48 image" in result.output and "wholly outside" in result.output

    class Ctx:  # what check_loaded_product reads of a RunContext
        base_dir = folder
        settings = get_settings()
        options = type("O", (), {"brand": None})()

    products = {p.sku: p for p in load_catalog(path).products}
    check_loaded_product(products["IN"], (64, 48), Ctx)
    with pytest.raises(PackshotError, match="outside the 64x48 image"):
        check_loaded_product(products["PART"], (64, 48), Ctx)


def test_validate_checks_the_recolor_mask_and_the_brand_style_like_the_run(tmp_path):
    from PIL import Image

    from stages.recolor import load_material_mask

    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(good_jpeg((64, 48)))
    Image.new("L", (30, 30), 255).save(folder / "square.png")
    Image.new("L", (128, 96), 255).save(folder / "double.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    path = _catalog(folder, ["SQ,Square,a.jpg,,,,,square.png", "BR,Broken,a.jpg,,,,,broken.png",
                             "DB,Double,a.jpg,,,,,double.png", "NB,Brand,a.jpg,,no-such-brand,,,"])
    result = _validate(path)
    assert result.exit_code == 1 and "1 product ready" in result.output
    assert "recolor mask 'square.png' is 30x30 px but the photo is 64x48" in result.output
    assert "catalog.csv:3 column 'recolor_mask'" in result.output
    assert "unknown brand style 'no-such-brand'" in result.output and "nordic-home" in result.output
    with pytest.raises(Exception, match="30x30 px but the photo is 64x48"):
        load_material_mask(folder / "square.png", (64, 48))


def test_brand_styles_are_found_from_any_folder_and_the_error_says_where_it_looked(tmp_path, monkeypatch):
    from packshot.errors import ConfigError
    from packshot.schemas.brand import PROJECT_DIR, brand_style_dirs, load_brand_style

    folder = tmp_path / "shop"
    (folder / "brand_styles").mkdir(parents=True)
    (folder / "brand_styles" / "shop-own.yaml").write_text("scene_prompts: ['a {title} on a table']\n")
    monkeypatch.chdir(folder)  # run from the catalog's folder: the project's styles are still found
    dirs = brand_style_dirs("brand_styles", folder)
    assert PROJECT_DIR / "brand_styles" in dirs
    assert load_brand_style("nordic-home", dirs).name == "nordic-home"
    monkeypatch.chdir(tmp_path)
    assert load_brand_style("shop-own", brand_style_dirs("brand_styles", folder)).name == "shop-own"
    with pytest.raises(ConfigError) as info:
        load_brand_style("nope", brand_style_dirs("brand_styles", folder))
    message = str(info.value)
    assert str(folder / "brand_styles") in message and str(PROJECT_DIR / "brand_styles") in message
    assert "PACKSHOT_BRAND_STYLES_DIR" in str(info.value)
    assert "PACKSHOT_BRAND_STYLES_DIR" in (PROJECT_DIR / "README.md").read_text()


@pytest.mark.parametrize("padding", [0, 9000])
def test_a_nul_byte_is_a_row_error_wherever_it_is(tmp_path, padding):
    from packshot.catalog import load_catalog

    filler = "".join(f"F{i},Filler {'x' * 80},f.jpg\n" for i in range(padding // 90))
    path = tmp_path / "c.csv"
    path.write_bytes((HEADER + filler + "NUL,Bad\x00title,a.jpg\nOK,Fine,b.jpg\n").encode())
    catalog = load_catalog(path)
    bad_line = 2 + filler.count("\n")
    assert [e.line for e in catalog.errors] == [bad_line] and "NUL byte" in catalog.errors[0].message
    assert "OK" in [p.sku for p in catalog.products] and "NUL" not in [p.sku for p in catalog.products]


def test_the_ui_form_has_defaults_choices_and_refuses_an_empty_stage_list():
    from pydantic import ValidationError

    from orchestrator.options import DEFAULT_STAGES, RunOptions

    schema = RunOptions.model_json_schema()["properties"]
    assert schema["stages"]["default"] == DEFAULT_STAGES and schema["stages"]["minItems"] == 1
    # Brands and presets are checked when the run starts (not frozen into the form at deploy time).
    assert schema["presets"]["type"] == "array" and "enum" not in schema["presets"]["items"]
    assert schema["brand"]["type"] == "string" and "enum" not in schema["brand"]
    assert not any("<" in str(field.get("description", "")) for field in schema.values())
    with pytest.raises(ValidationError, match="choose from nordic-home"):
        RunOptions(catalog="shop/spring.csv", brand="nordic_home")
    with pytest.raises(ValidationError):
        RunOptions(catalog="shop/spring.csv", stages=[])
    with pytest.raises(ValidationError, match="choose from"):
        RunOptions(catalog="shop/spring.csv", presets=["amazon-mian"])
    assert RunOptions(catalog="shop/spring.csv").out == "out/spring"
    assert RunOptions(catalog="shop/spring.csv", out="x").out == "x"


def test_prefect_yaml_nightly_schedule_is_the_settings_default():
    import yaml

    from flows.deployments import deployment_specs
    from orchestrator.settings import OrchestrationSettings, Settings
    from packshot.schemas.brand import PROJECT_DIR

    config = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    nightly = next(d for d in config["deployments"] if d["name"] == "nightly")
    (schedule,) = nightly["schedules"]
    defaults = OrchestrationSettings()
    assert (schedule["cron"], schedule["timezone"]) == (defaults.nightly_cron, defaults.timezone)
    code = deployment_specs(Settings())["nightly"]["schedules"][0]
    assert (code.cron, code.timezone) == (schedule["cron"], schedule["timezone"])


def test_a_video_run_without_any_clip_is_a_problem():
    from orchestrator.manifest import RunTally
    from orchestrator.options import RunOptions
    from orchestrator.run import run_problem
    from packshot.schemas.results import ProductResult

    tally = RunTally()
    for sku, note in (("A", "video: failed (runway/gen4_turbo): 500"), ("B", "video: skipped (budget)")):
        tally.add(ProductResult(sku=sku, status="done", notes=[note], source_file="c.csv", source_line=2))
    with_video = RunOptions(catalog="c.csv", stages=["segment", "export", "video"])
    assert "no ad clip was made" in run_problem(with_video, tally)
    assert run_problem(RunOptions(catalog="c.csv"), tally) is None


def test_check_treats_an_untagged_jpeg_as_srgb_with_a_warning(tmp_path):
    from PIL import Image, ImageCms

    from stages.export import check_files

    rgb = Image.new("RGB", (2000, 2000), (255, 255, 255))
    rgb.save(tmp_path / "phone.jpg", quality=95)
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    rgb.save(tmp_path / "lab.jpg", icc_profile=lab)
    report = check_files([tmp_path / "phone.jpg"], "shopify")
    (warning,) = [v for v in report[tmp_path / "phone.jpg"] if v.rule == "color-profile"]
    assert warning.warning and "assumed sRGB" in warning.message
    result = runner.invoke(app, ["check", str(tmp_path / "phone.jpg"), "--preset", "shopify"])
    assert "warning: color-profile" in result.output and "FAIL" not in result.output.split("warning")[0]
    for bad in ("cmyk.jpg", "lab.jpg"):
        violations = check_files([tmp_path / bad], "shopify")[tmp_path / bad]
        assert any(not v.warning and v.rule in ("color-mode", "color-profile") for v in violations), bad


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_honour_the_umask(tmp_path, umask):
    from orchestrator.manifest import StagedFile
    from packshot.storage import LocalStorage, atomic_write

    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.png", b"x")
        staged = StagedFile(LocalStorage(tmp_path), "manifest.csv", "text/csv")
        staged.write("a\n")
        staged.publish()
    finally:
        os.umask(old)
    for name in ("a.png", "manifest.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_leftovers_of_killed_runs_are_cleaned_on_the_next_start(tmp_path):
    import time

    from orchestrator.manifest import ManifestWriter, clean_leftovers, manifest_csv
    from packshot.schemas.results import ProductResult, RunManifest
    from packshot.storage import LocalStorage

    storage = LocalStorage(tmp_path / "out")
    root = tmp_path / "out"
    now = time.time()
    (root / "A").mkdir()
    # With the run lease held no other run writes here: a run's temp files go whatever their age (a
    # run killed a second ago), the review server's fresh ones stay (it may be writing now).
    for name, age in ((".packshot.png.k1.tmp", 7200), (".fresh.png.k2.tmp", 0), (".review.json.k3.tmp", 0),
                      (".review.json.k4.tmp", 7200)):
        (root / "A" / name).write_bytes(b"")
        os.utime(root / "A" / name, (now - age, now - age))
    for run, age in (("dead", 2 * 86400), ("killed", 60), ("this-run", 60)):
        (root / ".runs" / run).mkdir(parents=True)
        (root / ".runs" / run / "00000.jsonl").write_text("")
        os.utime(root / ".runs" / run / "00000.jsonl", (now - age, now - age))
    header = RunManifest(catalog="c.csv", catalog_format="packshot", output=storage.uri, stages=[],
                         presets=[], started="2026-01-01T00:00:00Z", products=[])
    with ManifestWriter(storage) as manifest:
        manifest.add(ProductResult(sku="A", status="done", source_file="c.csv", source_line=2))
        manifest.publish(header)
    (root / "manifest.csv").write_text("sku,status\nOLD,done\n")  # killed between the two renames

    notes = clean_leftovers(storage, "this-run", now)
    assert len(notes) == 4, notes
    assert sorted(p.name for p in (root / "A").iterdir()) == [".review.json.k3.tmp"]
    assert sorted(p.name for p in (root / ".runs").iterdir()) == ["this-run"]
    published = RunManifest.model_validate_json((root / "manifest.json").read_text())
    assert (root / "manifest.csv").read_bytes().decode() == manifest_csv(published)
    assert clean_leftovers(storage, "this-run", now) == []  # nothing left to do


def test_unfinished_multipart_uploads_under_our_prefix_are_aborted(tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    from packshot.storage import S3Storage

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                              config=Config(s3={"addressing_style": "path"}))
        client.create_bucket(Bucket="shop")
        ours = client.create_multipart_upload(Bucket="shop", Key="runs/spring/A/clip.mp4")["UploadId"]
        theirs = client.create_multipart_upload(Bucket="shop", Key="other/x.bin")["UploadId"]
        import time

        notes = S3Storage("s3://shop/runs/spring", client=client).clean_leftovers(time.time() + 60)
        assert notes == ["aborted 1 unfinished multipart upload(s) of an interrupted run"]
        left = {u["UploadId"] for u in client.list_multipart_uploads(Bucket="shop").get("Uploads", [])}
        assert left == {theirs} and ours not in left
    finally:
        server.stop()


def test_cleaning_up_after_earlier_runs_never_stops_a_run(tmp_path):
    from orchestrator.manifest import clean_leftovers
    from packshot.storage import LocalStorage

    class NoListing(LocalStorage):  # a bucket policy without s3:ListBucketMultipartUploads, say
        def clean_leftovers(self, older_than):
            raise PermissionError("AccessDenied")

    (note,) = clean_leftovers(NoListing(tmp_path), "run", 0.0)
    assert "could not clean up" in note and "AccessDenied" in note
