"""Safe image loading: decoding edge cases, path confinement, SSRF rules and download limits.

Network tests use real HTTP servers on 127.0.0.1 / 127.0.0.2; the loader reaches them only through
``load.allowed_networks`` + ``allow_http``, exactly as a merchant's internal image server would be.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError
from packshot.imageio import decode_image, load_image

SETTINGS = LoadSettings()


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def two_halves(size=(64, 32), left=(220, 30, 30), right=(30, 30, 220)) -> Image.Image:
    img = Image.new("RGB", size, right)
    img.paste(left, (0, 0, size[0] // 2, size[1]))
    return img


# ------------------------------------------------------------------------------------------------ decoding


def test_exif_rotated_jpeg_comes_out_upright():
    stored = two_halves((64, 32))  # red left, blue right, as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the left edge becomes the top
    loaded = decode_image(encode(stored, "JPEG", quality=95, exif=exif), "rotated.jpg", SETTINGS)

    assert loaded.size == (32, 64) and loaded.rgb.shape == (64, 32, 3)
    top, bottom = loaded.rgb[:24].reshape(-1, 3).mean(0), loaded.rgb[-24:].reshape(-1, 3).mean(0)
    assert top[0] > 180 and top[2] < 80, top  # red on top
    assert bottom[2] > 180 and bottom[0] < 80, bottom


def test_cmyk_jpeg_converts_to_rgb_colors():
    img = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red
    img.paste((255, 0, 0, 0), (0, 32, 64, 64))  # cyan
    loaded = decode_image(encode(img, "JPEG", quality=95), "cmyk.jpg", SETTINGS)
    assert loaded.rgb.dtype == np.uint8 and loaded.alpha is None
    np.testing.assert_allclose(loaded.rgb[8, 8], (255, 0, 0), atol=8)
    np.testing.assert_allclose(loaded.rgb[56, 8], (0, 255, 255), atol=8)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def adobe_rgb_profile() -> bytes:
    """A minimal ICC v2 Adobe RGB (1998) matrix/TRC profile (D50-adapted colorants, gamma 563/256)."""

    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)

    text = b"Adobe RGB (1998) test\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8) + bytes(3) + bytes(67)
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, 563) + bytes(2)
    tags = [
        (b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)),
        (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)), (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, payload in tags:
        payload += bytes(-len(payload) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(payload))
        data += payload
    size = offset + len(data)
    header = (
        struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + bytes(12)
        + b"acsp" + bytes(24) + struct.pack(">I", 0) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    )
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def adobe_to_srgb(rgb8) -> np.ndarray:
    """Reference conversion with the published D50 matrices (independent of littleCMS)."""
    adobe = np.array([[0.60974, 0.20528, 0.14919], [0.31111, 0.62567, 0.06322], [0.01947, 0.06087, 0.74457]])
    srgb = np.array([[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169],
                     [0.0139322, 0.0971045, 0.7141733]])
    linear = np.linalg.solve(srgb, adobe @ ((np.asarray(rgb8) / 255.0) ** (563 / 256)))
    linear = np.clip(linear, 0, 1)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return encoded * 255


def test_icc_tagged_adobe_rgb_is_converted_to_srgb():
    color = (180, 120, 60)
    data = encode(Image.new("RGB", (32, 32), color), "PNG", icc_profile=adobe_rgb_profile())
    loaded = decode_image(data, "adobe.png", SETTINGS)
    expected = adobe_to_srgb(color)
    assert np.abs(expected - color).max() > 8  # the profile matters for this color
    np.testing.assert_allclose(loaded.rgb[16, 16], expected, atol=3)


def test_broken_icc_profile_falls_back_and_says_so():
    data = encode(Image.new("RGB", (16, 16), (10, 200, 30)), "PNG", icc_profile=b"not a profile" * 20)
    loaded = decode_image(data, "broken-icc.png", SETTINGS)
    assert tuple(loaded.rgb[0, 0]) == (10, 200, 30)
    assert any("ICC" in note for note in loaded.notes)


def test_16_bit_png_gray_and_rgb_scale_to_8_bit():
    gray = np.full((16, 16), 65535, np.uint16)
    gray[0, :4] = (0, 257 * 100, 1000, 32768)
    loaded = decode_image(cv2.imencode(".png", gray)[1].tobytes(), "gray16.png", SETTINGS)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (16, 16, 3)
    assert loaded.rgb[0, :4, 0].tolist() == [0, 100, 4, 128] and loaded.rgb[5, 5].tolist() == [255] * 3

    rgb16 = np.zeros((16, 16, 3), np.uint16)
    rgb16[..., 2], rgb16[..., 1], rgb16[..., 0] = 257 * 200, 257 * 50, 65535  # cv2 is BGR: R=200 G=50 B=255
    loaded = decode_image(cv2.imencode(".png", rgb16)[1].tobytes(), "rgb16.png", SETTINGS)
    assert loaded.rgb[3, 3].tolist() == [200, 50, 255]


def test_palette_png_with_transparency_keeps_alpha():
    img = Image.new("P", (16, 16), 0)
    img.putpalette([200, 10, 10, 0, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 8, 16))
    loaded = decode_image(encode(img, "PNG", transparency=1), "palette.png", SETTINGS)
    assert loaded.alpha is not None
    assert loaded.alpha[:, :8].max() == 0 and loaded.alpha[:, 8:].min() == 255
    assert loaded.rgb[4, 12].tolist() == [200, 10, 10]


def test_rgba_png_keeps_alpha_and_opaque_alpha_is_dropped():
    img = Image.new("RGBA", (16, 16), (10, 20, 30, 255))
    img.paste((40, 50, 60, 100), (0, 0, 16, 8))
    loaded = decode_image(encode(img), "rgba.png", SETTINGS)
    assert loaded.rgb[2, 2].tolist() == [40, 50, 60] and loaded.alpha[2, 2] == 100
    assert loaded.rgb[12, 2].tolist() == [10, 20, 30] and loaded.alpha[12, 2] == 255

    opaque = decode_image(encode(Image.new("RGBA", (8, 8), (1, 2, 3, 255))), "opaque.png", SETTINGS)
    assert opaque.alpha is None


@pytest.mark.parametrize(("mode", "color", "expected_rgb", "expected_alpha"), [
    ("L", 90, [90, 90, 90], None),
    ("LA", (90, 120), [90, 90, 90], 120),
    ("1", 1, [255, 255, 255], None),
])
def test_grayscale_modes_convert_to_rgb(mode, color, expected_rgb, expected_alpha):
    loaded = decode_image(encode(Image.new(mode, (8, 8), color)), f"{mode}.png", SETTINGS)
    assert loaded.rgb.shape == (8, 8, 3) and loaded.rgb[0, 0].tolist() == expected_rgb
    assert (loaded.alpha is None) if expected_alpha is None else loaded.alpha[0, 0] == expected_alpha


def test_animated_gif_uses_first_frame_and_says_so():
    frames = [Image.new("RGB", (16, 16), c) for c in ((250, 0, 0), (0, 250, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    loaded = decode_image(data, "anim.gif", SETTINGS)
    assert loaded.rgb[0, 0, 0] > 200 and loaded.rgb[0, 0, 1] < 50
    assert any("first frame" in note for note in loaded.notes)


def test_sha256_is_of_source_bytes():
    import hashlib

    data = encode(Image.new("RGB", (8, 8), (1, 2, 3)))
    assert decode_image(data, "a.png", SETTINGS).sha256 == hashlib.sha256(data).hexdigest()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring ``width x height`` with almost no pixel data: a decompression bomb in miniature."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b""
    )


def test_bomb_is_refused_from_the_header_without_allocating():
    bomb = png_header_only(50_000, 50_000)  # 2.5 G pixels, 7.5 GB decoded
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match="too many pixels"):
            decode_image(bomb, "bomb.png", SETTINGS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak


def test_pixel_limit_setting_is_enforced_before_decoding():
    data = png_header_only(200, 200)
    with pytest.raises(ImageLoadError, match=r"200x200.*max_pixels"):
        decode_image(data, "big.png", LoadSettings(max_pixels=10_000))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_a_clear_error(fmt):
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)), fmt)
    with pytest.raises(ImageLoadError, match="truncated|corrupt|invalid") as err:
        decode_image(data[: len(data) * 6 // 10], "cut." + fmt.lower(), SETTINGS)
    assert "cut." in str(err.value)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (np.random.default_rng(1).bytes(4096), "not a readable image"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
    (b"%PDF-1.7\n...", "PDF"),
])
def test_non_images_give_clear_errors(data, message):
    with pytest.raises(ImageLoadError, match=message) as err:
        decode_image(data, "product.jpg", SETTINGS)
    assert "product.jpg" in str(err.value)


# ----------------------------------------------------------------------------------------------- local paths


@pytest.fixture
def catalog(tmp_path):
    base = tmp_path / "catalog"
    (base / "img").mkdir(parents=True)
    (base / "img" / "shoe.png").write_bytes(encode(Image.new("RGB", (8, 8), (5, 6, 7))))
    (tmp_path / "secret.png").write_bytes(encode(Image.new("RGB", (8, 8), (9, 9, 9))))
    return base


def test_local_relative_and_absolute_inside_paths_load(catalog):
    assert load_image("img/shoe.png", catalog, SETTINGS).rgb[0, 0].tolist() == [5, 6, 7]
    inside = str(catalog / "img" / "shoe.png")
    loaded = load_image(inside, catalog, SETTINGS)
    assert loaded.source == inside and loaded.size == (8, 8)


def test_local_paths_escaping_the_catalog_are_refused(catalog):
    (catalog / "img" / "link.png").symlink_to(catalog.parent / "secret.png")
    for ref in ["../secret.png", "img/../../secret.png", str(catalog.parent / "secret.png"), "img/link.png"]:
        with pytest.raises(ImageLoadError, match="outside the catalog folder"):
            load_image(ref, catalog, SETTINGS)


def test_missing_file_names_the_resolved_path(catalog):
    with pytest.raises(ImageLoadError, match="not found") as err:
        load_image("img/nope.png", catalog, SETTINGS)
    assert str(catalog.resolve() / "img" / "nope.png") in str(err.value)


@pytest.mark.parametrize("ref", ["", "img", "ftp://host/a.png", "file:///etc/passwd", "s3://", "https://"])
def test_odd_references_raise_image_load_error(catalog, ref):
    with pytest.raises(ImageLoadError):
        load_image(ref, catalog, SETTINGS)


# ------------------------------------------------------------------------------------------------ HTTP

PNG_BYTES = encode(two_halves((32, 16)))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        server = self.server
        server.hits.append((self.path, self.headers.get("Host"), self.headers.get("User-Agent")))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            server.routes[self.path.split("?")[0]](self)

    def send_body(self, body: bytes, status: int = 200, content_type: str = "image/png"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(host: str, port: int, routes: dict):
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.hits, server.routes = [], routes
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _stream_forever(handler, pause_s: float, chunk: bytes, total: int, stall_after: int | None = None):
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Connection", "close")  # no Content-Length: the body runs until close
    handler.end_headers()
    sent = 0
    while sent < total:
        handler.wfile.write(chunk)
        handler.wfile.flush()
        sent += len(chunk)
        time.sleep(5.0 if sent == stall_after else pause_s)


@pytest.fixture(scope="module")
def servers():
    """Main server on 127.0.0.1 and a 'forbidden' one on 127.0.0.2 at the same port."""
    flaky_calls = {"n": 0}

    def flaky(h):
        flaky_calls["n"] += 1
        if flaky_calls["n"] <= 2:
            h.send_body(b"busy", 503, "text/plain")
        else:
            h.send_body(PNG_BYTES)

    routes = {
        "/img.png": lambda h: h.send_body(PNG_BYTES),
        "/to-relative": lambda h: h.redirect("/img.png"),
        "/to-forbidden": lambda h: h.redirect(f"http://127.0.0.2:{h.server.server_port}/img.png"),
        "/to-metadata": lambda h: h.redirect("http://169.254.169.254/latest/meta-data/"),
        "/loop": lambda h: h.redirect("/loop"),
        "/declared-huge": _declare_huge,
        "/endless": lambda h: _stream_forever(h, 0.0, b"\0" * 65536, 50_000_000),
        # a byte every 0.1 s (no single read times out), then a long stall near the end of the budget
        "/slow": lambda h: _stream_forever(h, 0.1, b"\0", 1000, stall_after=8),
        "/missing": lambda h: h.send_body(b"not found", 404, "text/plain"),
        "/login": lambda h: h.send_body(b"<html><body>Please sign in</body></html>", 200, "text/html"),
        "/flaky": flaky,
    }
    main = _serve("127.0.0.1", 0, routes)
    forbidden = _serve("127.0.0.2", main.server_port, {"/img.png": lambda h: h.send_body(PNG_BYTES)})
    yield main, forbidden
    for server in (main, forbidden):
        server.shutdown()
        server.server_close()


def _declare_huge(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**9))
    handler.end_headers()
    handler.wfile.write(b"\0" * 1024)


@pytest.fixture
def hits(servers):
    for server in servers:
        server.hits.clear()
    return servers


def allowed(**overrides) -> LoadSettings:
    base = {"allow_http": True, "allowed_networks": ["127.0.0.1/32"], "download_timeout_s": 5.0}
    return LoadSettings(**{**base, **overrides})


def url(servers, path: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{servers[0].server_port}{path}"


def test_image_from_allowed_local_server_loads(hits, tmp_path):
    main, _ = hits
    loaded = load_image(url(hits, "/img.png"), tmp_path, allowed())
    assert loaded.size == (32, 16) and loaded.rgb[8, 2].tolist() == [220, 30, 30]
    assert len(main.hits) == 1 and main.hits[0][2].startswith("packshot/")


def test_relative_redirect_is_followed(hits, tmp_path):
    assert load_image(url(hits, "/to-relative"), tmp_path, allowed()).size == (32, 16)
    assert [h[0] for h in hits[0].hits] == ["/to-relative", "/img.png"]


@pytest.mark.parametrize("path", ["/to-forbidden", "/to-metadata"])
def test_redirect_to_blocked_address_is_refused(hits, tmp_path, path):
    main, forbidden = hits
    with pytest.raises(ImageLoadError, match="refused"):
        load_image(url(hits, path), tmp_path, allowed())
    assert forbidden.hits == [] and [h[0] for h in main.hits] == [path]


def test_redirect_loop_stops_at_max_redirects(hits, tmp_path):
    with pytest.raises(ImageLoadError, match="max_redirects"):
        load_image(url(hits, "/loop"), tmp_path, allowed(max_redirects=3))
    assert len(hits[0].hits) == 4


def test_blocked_addresses_are_refused_before_any_connection(hits, tmp_path, monkeypatch):
    main, forbidden = hits
    port = main.server_port
    real_getaddrinfo = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):  # a public-looking name that points at loopback
        return real_getaddrinfo("127.0.0.1" if host == "images.evil.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    lax = LoadSettings(allow_http=True)  # plain http allowed, but no private networks
    refs = [
        f"http://127.0.0.1:{port}/img.png", f"http://localhost:{port}/img.png", f"http://[::1]:{port}/img.png",
        f"http://0.0.0.0:{port}/img.png", f"http://2130706433:{port}/img.png", f"http://127.1:{port}/img.png",
        f"http://images.evil.test:{port}/img.png", "http://10.0.0.1/img.png",
        "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/img.png",
        "http://100.64.0.1/img.png", "http://[fd12::1]/img.png", "http://[fe80::1]/img.png",
    ]
    for ref in refs:
        started = time.monotonic()
        with pytest.raises(ImageLoadError, match="refused") as err:
            load_image(ref, tmp_path, lax)
        assert time.monotonic() - started < 0.5, ref
        assert "ALLOWED_NETWORKS" in str(err.value)
    assert main.hits == [] and forbidden.hits == []


def test_https_only_by_default(hits, tmp_path):
    with pytest.raises(ImageLoadError, match="ALLOW_HTTP"):
        load_image(url(hits, "/img.png"), tmp_path, LoadSettings(allowed_networks=["127.0.0.1/32"]))
    assert hits[0].hits == []


def test_connection_goes_to_the_checked_address_not_a_rebound_one(hits, tmp_path, monkeypatch):
    main, forbidden = hits
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])  # rebinding: later lookups say 127.0.0.2
    lookups = []

    def rebinding_dns(host, *args, **kwargs):
        if host == "cdn.shop.test":
            lookups.append(host)
            host = next(answers)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    load_image(url(hits, "/img.png", host="cdn.shop.test"), tmp_path, allowed())
    assert lookups == ["cdn.shop.test"] and forbidden.hits == []
    assert main.hits[0][1] == f"cdn.shop.test:{main.server_port}"  # Host header keeps the real name


def test_declared_oversized_body_is_refused(hits, tmp_path):
    with pytest.raises(ImageLoadError, match="Content-Length"):
        load_image(url(hits, "/declared-huge"), tmp_path, allowed(max_download_bytes=100_000))


def test_streamed_body_is_cut_off_at_the_limit(hits, tmp_path):
    started = time.monotonic()
    with pytest.raises(ImageLoadError, match="too large.*max_download_bytes"):
        load_image(url(hits, "/endless"), tmp_path, allowed(max_download_bytes=200_000))
    assert time.monotonic() - started < 2.0  # stopped long before the server's 50 MB


def test_slow_server_hits_the_total_timeout(hits, tmp_path):
    started = time.monotonic()
    with pytest.raises(ImageLoadError, match="download_timeout_s"):
        load_image(url(hits, "/slow"), tmp_path, allowed(download_timeout_s=1.0))
    assert 0.9 < time.monotonic() - started < 1.5  # one total budget, not a per-read timeout


def test_transient_5xx_is_retried_but_4xx_is_not(hits, tmp_path):
    main, _ = hits
    assert load_image(url(hits, "/flaky"), tmp_path, allowed()).size == (32, 16)
    assert [h[0] for h in main.hits] == ["/flaky"] * 3
    main.hits.clear()
    with pytest.raises(ImageLoadError, match="HTTP 404"):
        load_image(url(hits, "/missing"), tmp_path, allowed())
    assert len(main.hits) == 1


def test_html_login_page_is_not_taken_for_an_image(hits, tmp_path):
    with pytest.raises(ImageLoadError, match="HTML"):
        load_image(url(hits, "/login?token=secret"), tmp_path, allowed())


def test_query_string_secrets_stay_out_of_messages(hits, tmp_path):
    with pytest.raises(ImageLoadError) as err:
        load_image(url(hits, "/missing?X-Amz-Signature=topsecret"), tmp_path, allowed())
    assert "topsecret" not in str(err.value)


def test_unreachable_server_is_a_clear_error(tmp_path):
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ImageLoadError, match="network error"):
        load_image(f"http://127.0.0.1:{port}/a.png", tmp_path, allowed())


# --------------------------------------------------------------------------------------------------- S3


def test_s3_object_loads_and_missing_key_is_clear(tmp_path):
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )
        client.create_bucket(Bucket="shop")
        client.put_object(Bucket="shop", Key="a/b.png", Body=PNG_BYTES)
        assert load_image("s3://shop/a/b.png", tmp_path, SETTINGS, s3_client=client).size == (32, 16)
        with pytest.raises(ImageLoadError, match="NoSuchKey"):
            load_image("s3://shop/a/none.png", tmp_path, SETTINGS, s3_client=client)
        with pytest.raises(ImageLoadError, match="too large"):
            load_image("s3://shop/a/b.png", tmp_path, LoadSettings(max_download_bytes=20), s3_client=client)
    finally:
        server.stop()


# -------------------------------------------------------------------------------------------------- TLS


def _make_ca_and_leaf(directory: Path, hostname: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for ``hostname`` signed by it (PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, is_ca, san=None):
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "packshot test CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    leaf = build(leaf_name, ca_name, leaf_key.public_key(), ca_key, False, san=hostname)

    ca_pem, cert_pem, key_pem = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, cert_pem, key_pem


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    import ssl

    pytest.importorskip("cryptography")
    ca_pem, cert_pem, key_pem = _make_ca_and_leaf(tmp_path_factory.mktemp("tls"), "images.shop.test")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.hits, server.routes = [], {"/img.png": lambda h: h.send_body(PNG_BYTES)}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, ca_pem
    server.shutdown()
    server.server_close()


def test_https_checks_the_certificate_against_the_hostname_while_connecting_to_the_checked_ip(
    tls_server, tmp_path, monkeypatch
):
    server, ca_pem = tls_server
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(
        socket, "getaddrinfo",
        lambda host, *a, **k: real_getaddrinfo("127.0.0.1" if host == "images.shop.test" else host, *a, **k),
    )
    settings = LoadSettings(allowed_networks=["127.0.0.1/32"], ca_bundle=ca_pem, download_timeout_s=5)
    port = server.server_port

    loaded = load_image(f"https://images.shop.test:{port}/img.png", tmp_path, settings)
    assert loaded.size == (32, 16) and server.hits[-1][1] == f"images.shop.test:{port}"

    # Same server by IP: the certificate does not name 127.0.0.1, so verification must fail.
    with pytest.raises(ImageLoadError, match="not valid for '127.0.0.1'.*CA_BUNDLE"):
        load_image(f"https://127.0.0.1:{port}/img.png", tmp_path, settings)
    # Without the merchant's CA the chain is untrusted.
    with pytest.raises(ImageLoadError, match="TLS check failed.*CA_BUNDLE"):
        load_image(f"https://images.shop.test:{port}/img.png", tmp_path, settings.model_copy(
            update={"ca_bundle": None}))
