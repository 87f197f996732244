"""Local storage writes are atomic and stay inside the run folder."""

import pytest

from packshot.storage import LocalStorage, atomic_write


def test_write_read_and_link(tmp_path):
    st = LocalStorage(tmp_path / "run")
    uri = st.write_bytes("SKU1/packshot-shopify.jpg", b"abc")
    assert st.read_bytes("SKU1/packshot-shopify.jpg") == b"abc"
    assert uri.endswith("SKU1/packshot-shopify.jpg") and st.exists("SKU1/packshot-shopify.jpg")
    assert st.link("SKU1/packshot-shopify.jpg") == "SKU1/packshot-shopify.jpg"


@pytest.mark.parametrize("key", ["../escape.jpg", "/etc/passwd", "a/../../b"])
def test_keys_cannot_escape_the_run(tmp_path, key):
    with pytest.raises(ValueError):
        LocalStorage(tmp_path).write_bytes(key, b"x")


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    # A write that dies half-way (here: the data cannot be written) must not touch the old file.
    with pytest.raises(TypeError):
        atomic_write(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
