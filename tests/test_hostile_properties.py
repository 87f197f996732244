"""Property tests (Hypothesis): mutated catalogs of each format and hostile image files never crash
the reader, ``validate`` or the loader; every bad row is named by file and line, good rows survive."""

from __future__ import annotations

import csv
import io
import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packshot.catalog import load_catalog, validate_catalog, validation_context
from packshot.config import LoadSettings
from packshot.errors import ImageLoadError
from packshot.imageio import load_image
from tests.hostile_files import HOSTILE_KINDS, good_jpeg, make_hostile

SAMPLES = Path(__file__).resolve().parent.parent / "catalogs" / "samples"
FORMATS = {"packshot": "packshot_catalog.csv", "shopify": "shopify_products.csv",
           "woocommerce": "woocommerce_products.csv"}
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE_CELLS = [
    "", " ", "\x00", "a\x00b", "\x07bell", "=cmd|' /C calc'!A0", "+SUM(1+1)", "@x", "../../etc/passwd",
    "/etc/passwd", "C:\\photos\\x.jpg", "file:///etc/passwd", "s3://", "s3://bucket", "http://", "https://",
    "x" * 5000, "\n", "line\nbreak", "\r\n", '"', 'quo"te', "a,b,c", "🙂", "\ufeff", "..", ".", "Navy|Navy",
    "Sky Blue|sky-blue", "Sky Blue=#87CEEB|sky-blue=#000000", "1,2,3", "-1,0,5,5", "0,0,0,0",
    "99999999999999999999,0,1,1", "id:", "id:999", "id:101", "variation", "simple", "variable", "nan",
    "#GGGGGG", "Color", "colour", "Farbe", "nordic-home", "no-such-brand", "a" * 101, "TEE-001", "HOOD-ZIP",
]
cell_values = st.one_of(
    st.sampled_from(HOSTILE_CELLS),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
)


def _records(name: str) -> tuple[list[str], list[list[str]]]:
    text = (SAMPLES / name).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], [r for r in rows[1:] if any(c.strip() for c in r)]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> list[int]:
    """Write the CSV; returns the line each row starts on (header = line 1)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    starts, line = [], 1 + buf.getvalue().count("\n")
    for row in rows:
        before = buf.tell()
        writer.writerow(row)
        starts.append(line)
        line += buf.getvalue()[before:].count("\n")
    path.write_text(buf.getvalue(), encoding="utf-8")
    return starts


def _depends(fmt: str, header: list[str], rows: list[list[str]]) -> dict[str, tuple[set[int], set[str]]]:
    """Baseline product sku -> (row indexes it is built from, names other rows could refer to it by)."""
    col = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}

    def get(row: list[str], name: str) -> str:
        i = col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    out: dict[str, tuple[set[int], set[str]]] = {}
    if fmt == "packshot":
        for i, row in enumerate(rows):
            out[get(row, "sku")] = ({i}, {get(row, "sku")})
    elif fmt == "shopify":
        for i, row in enumerate(rows):
            handle = get(row, "handle")
            out.setdefault(handle, (set(), {handle}))[0].add(i)
    else:
        for i, row in enumerate(rows):
            ident, sku = get(row, "id"), get(row, "sku")
            if "variation" not in get(row, "type").lower():
                out[sku or f"id-{ident}"] = ({i}, {n for n in (ident, sku) if n})
        for i, row in enumerate(rows):
            parent = get(row, "parent").removeprefix("id:")
            for rows_of, names in out.values():
                if parent and parent in names:
                    rows_of.add(i)
    return out


mutations = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 10_000), st.one_of(cell_values, st.none())),
    min_size=1, max_size=3,
)


def _check_mutated_catalog(fmt: str, picks) -> None:
    header, rows = _records(FORMATS[fmt])
    with tempfile.TemporaryDirectory() as tmp:
        base_path = Path(tmp) / "base.csv"
        _write(base_path, header, rows)
        baseline = {p.sku: p for p in load_catalog(base_path).products}
        mutated_rows = [list(r) for r in rows]
        touched: dict[int, list[str]] = {}
        for row_pick, cell_pick, value in picks:
            index = row_pick % len(rows)
            row = mutated_rows[index]
            if value is None:  # a short row, as a spreadsheet trims trailing empty cells
                del row[cell_pick % (len(row) + 1):]
                touched.setdefault(index, []).append("")
            else:
                cell = cell_pick % len(header)
                row += [""] * (cell + 1 - len(row))
                row[cell] = value
                touched.setdefault(index, []).append(value)
        path = Path(tmp) / "catalog.csv"
        starts = _write(path, header, mutated_rows)
        catalog = load_catalog(path)  # no exception, whatever the cells hold

        assert catalog.format == fmt
        for error in catalog.errors:
            assert error.file == str(path) and error.line in starts, error
            assert error.message
        bad_lines = {e.line for e in catalog.errors}
        for index, row in enumerate(mutated_rows):
            if any("\x00" in cell for cell in row):
                assert starts[index] in bad_lines, (index, row)
        values = [v.strip().casefold() for vs in touched.values() for v in vs]
        good = {p.sku: p for p in catalog.products}
        for sku, (row_indexes, names) in _depends(fmt, header, rows).items():
            if sku not in baseline or row_indexes & touched.keys():
                continue
            if any(name.casefold() in value for name in names for value in values):
                continue  # a mutated row names this product (a duplicate sku, a new variation)
            assert sku in good, (sku, catalog.errors)
            where = {"source_line", "source_file"}
            assert good[sku].model_dump(exclude=where) == baseline[sku].model_dump(exclude=where)


@FAST
@given(picks=mutations)
def test_mutated_packshot_catalogs_never_crash_and_name_every_bad_row(picks):
    _check_mutated_catalog("packshot", picks)


@FAST
@given(picks=mutations)
def test_mutated_shopify_exports_never_crash_and_name_every_bad_row(picks):
    _check_mutated_catalog("shopify", picks)


@FAST
@given(picks=mutations)
def test_mutated_woocommerce_exports_never_crash_and_name_every_bad_row(picks):
    _check_mutated_catalog("woocommerce", picks)


def _bounded(fn, timeout: float = 20.0):
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


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from((*HOSTILE_KINDS, "good")), min_size=1, max_size=6))
def test_hostile_image_files_get_a_message_per_row_from_validate_and_the_loader(kinds):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cat"
        folder.mkdir()
        refs = []
        for i, kind in enumerate(kinds):
            if kind == "good":
                (folder / f"good{i}.jpg").write_bytes(good_jpeg())
                refs.append(f"good{i}.jpg")
            else:
                refs.append(make_hostile(kind, folder, f"h{i}.img"))
        path = folder / "catalog.csv"
        lines = "".join(f"S{i},Product {i},{ref}\n" for i, ref in enumerate(refs))
        path.write_text("sku,title,image\n" + lines)
        parsed = load_catalog(path)
        box = _bounded(lambda: validate_catalog(parsed, validation_context(path, 40_000_000)))
        assert "error" not in box, box.get("error")
        checked = box["value"]
        by_line = {e.line: e for e in checked.errors}
        assert sorted(p.sku for p in checked.products) == sorted(
            f"S{i}" for i, k in enumerate(kinds) if k == "good")
        for i, (kind, ref) in enumerate(zip(kinds, refs, strict=True)):
            if kind != "good":
                assert i + 2 in by_line and by_line[i + 2].file == str(path), (kind, checked.errors)
            loaded = _bounded(lambda ref=ref: load_image(ref, folder, LoadSettings(max_pixels=40_000_000)))
            if kind == "good":
                assert "value" in loaded, loaded
            else:
                assert isinstance(loaded.get("error"), ImageLoadError), (kind, loaded)
