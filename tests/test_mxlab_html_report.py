"""mxlab/results/html_report.py and mxlab/results/thumbnails.py: the pure pieces, the `mxlab report` command, and
reports opened in a real headless Chromium (every thumbnail loaded, labels visible, no errors)."""
import io
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from mxlab.results import html_report
from mxlab.results.html_report import image_rows, load_run, local_original, run_facts_rows, script_json, write_report
from mxlab.errors import UsageError
from mxlab.results.thumbnails import MAX_SIDE, ThumbnailError, thumbnail_jpeg
from tests.fixtures_sshd import direct_args
from tests.run_folders import MODELS, failed, make_run, ok, open_report


def large_photo(path, width=4000, height=3000, seed=0):
    """A noisy photo-sized JPEG: several MB that do not compress away."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


# ---- pure pieces ---------------------------------------------------------------------------

def test_image_rows_put_models_side_by_side_in_input_order():
    records = [ok("b.jpg", "m1", "cat"), ok("a.jpg", "m1", "dog"), failed("b.jpg", "m2", "bad"),
               ok("a.jpg", "m2", "wolf"), ok("c.jpg", "other", "x")]
    rows = image_rows(records, ["m1", "m2"])
    assert [r[0] for r in rows] == ["b.jpg", "a.jpg", "c.jpg"]
    assert rows[0][1] == [{"t": [["cat", 0.7]]}, {"e": "bad"}]
    assert rows[1][1] == [{"t": [["dog", 0.7]]}, {"t": [["wolf", 0.7]]}]
    assert rows[2][1] == [None, None]  # a model the run did not ask for is no column


def test_local_original_resolves_names_against_the_folder_of_the_run(tmp_path):
    assert local_original("photos/cat.jpg", tmp_path) == tmp_path / "photos" / "cat.jpg"
    assert local_original("/abs/cat.jpg", tmp_path) == Path("/abs/cat.jpg")
    assert local_original("http://127.0.0.1:8000/cat.jpg", tmp_path) is None
    assert local_original("https://example.org/cat.jpg", tmp_path) is None


def test_script_json_cannot_end_the_script_element():
    text = script_json({"label": "</script><script>alert(1)</script><!--", "and": "a & b"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"label": "</script><script>alert(1)</script><!--", "and": "a & b"}


def test_header_facts_count_hosts_results_and_images_per_second(tmp_path):
    run_dir = make_run(tmp_path, [
        ("h1", "partial", "some inputs failed", [ok("a.jpg", m, "cat") for m in MODELS] +
         [failed("b.jpg", "efficientnet-lite0", "not an image")]),
        ("h2", "failed", "agent exited 1", [])], seconds=4.0)
    facts = dict(run_facts_rows(load_run(run_dir)))
    assert facts["hosts"] == "2 (1 failed, 1 partial)"
    assert facts["models"] == "efficientnet-lite0, efficientnet-lite1"
    assert facts["results"] == "2 ok, 1 failed input(s)"
    assert facts["images"] == "2"
    assert facts["images/s"].startswith("0.25 ")  # 2 results / 2 models / 4 s
    assert facts["when"] == "1970-01-01 00:16:40 UTC"
    assert facts["command"] == "mxlab compare"


def test_header_without_run_json_takes_the_time_from_the_run_id(tmp_path):
    run_dir = make_run(tmp_path, [("h1", "ok", None, [ok("a.jpg", "m", "cat")])], models=["m"])
    (run_dir / "run.json").unlink()
    run = load_run(run_dir)
    facts = dict(run_facts_rows(run))
    assert run.models == ["m"]  # from the records
    assert facts["when"] == "2026-12-01 12:00:00 UTC"
    assert facts["images/s"].startswith("unknown")


def test_a_run_without_summary_reads_each_host_file_once(tmp_path):
    run_dir = make_run(tmp_path, [("h1", "ok", None, [ok("a.jpg", "m", "cat")]),
                                  ("h2", "ok", None, [ok("b.jpg", "m", "dog")])], models=["m"])
    (run_dir / "summary.json").unlink()
    (run_dir / "results.jsonl").write_text((run_dir / "h1.jsonl").read_text() + (run_dir / "h2.jsonl").read_text())
    run = load_run(run_dir)
    assert [(h.label, len(h.records)) for h in run.hosts] == [("h1", 1), ("h2", 1)]


def test_a_folder_that_is_not_a_run_is_named_in_the_error(tmp_path):
    run_dir = make_run(tmp_path, [("h1", "ok", None, [ok("a.jpg", "m", "cat")])], models=["m"])
    with pytest.raises(UsageError, match="not a run folder.*give one of them"):
        load_run(run_dir.parent)
    with pytest.raises(UsageError, match="no such folder"):
        load_run(tmp_path / "nowhere")
    (run_dir / "summary.json").write_text("{not json")
    with pytest.raises(UsageError, match="summary.json is not valid JSON"):
        load_run(run_dir)


def test_thumbnail_is_small_whatever_the_original(tmp_path):
    photo = large_photo(tmp_path / "big.jpg")
    jpeg = thumbnail_jpeg(photo)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (MAX_SIDE * 3 // 4, MAX_SIDE)  # 4:3 kept, longer side MAX_SIDE
    assert len(jpeg) < photo.stat().st_size / 50


def test_thumbnail_is_upright_as_the_camera_says(tmp_path):
    from PIL import Image
    # 400x200 stored pixels with EXIF orientation 6 (rotate 90°): a viewer shows it 200 wide, 400 tall.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (400, 200), (200, 30, 30)).save(tmp_path / "turned.jpg", exif=exif.tobytes())
    image = cv2.imdecode(np.frombuffer(thumbnail_jpeg(tmp_path / "turned.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (MAX_SIDE, MAX_SIDE // 2)


def test_small_images_are_not_scaled_up(tmp_path):
    cv2.imwrite(str(tmp_path / "small.png"), np.full((50, 80, 3), 90, np.uint8))
    image = cv2.imdecode(np.frombuffer(thumbnail_jpeg(tmp_path / "small.png"), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (50, 80)


def test_thumbnail_errors_name_the_file(tmp_path):
    with pytest.raises(ThumbnailError, match="not found on this machine: .*gone.jpg"):
        thumbnail_jpeg(tmp_path / "gone.jpg")
    (tmp_path / "text.jpg").write_text("not a JPEG")
    with pytest.raises(ThumbnailError, match="not an image Pillow can decode: .*text.jpg") as caught:
        thumbnail_jpeg(tmp_path / "text.jpg")
    assert caught.value.reason == "not an image Pillow can decode"  # beside the name in the report
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ThumbnailError, match="not an image Pillow can decode: .*empty.jpg"):
        thumbnail_jpeg(tmp_path / "empty.jpg")
    with pytest.raises(ThumbnailError, match="cannot read %s: " % re.escape(str(tmp_path))) as caught:
        thumbnail_jpeg(tmp_path)  # a folder: open() fails, and says why
    assert caught.value.reason.startswith("cannot read it: ")


def png_header(width, height):
    """A PNG that only says how large it is: enough for Pillow to open it, not to decode it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 20_000])  # 100 MP: over Pillow's limit; 400 MP: a bomb error
def test_a_huge_image_gets_a_reason_not_a_crash(tmp_path, side, recwarn):
    (tmp_path / "huge.png").write_bytes(png_header(side, side))
    with pytest.raises(ThumbnailError, match="too large to decode safely: .*huge.png") as caught:
        thumbnail_jpeg(tmp_path / "huge.png")
    assert caught.value.reason.startswith("too large to decode safely: ")
    assert not [w for w in recwarn if "decompression bomb" in str(w.message)]  # the reason says it


def test_a_truncated_jpeg_gets_a_reason_not_half_a_picture(tmp_path):
    whole = large_photo(tmp_path / "whole.jpg", 800, 600).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ThumbnailError, match="cannot decode .*cut.jpg: .*truncated") as caught:
        thumbnail_jpeg(tmp_path / "cut.jpg")
    assert caught.value.reason.startswith("cannot decode it: image file is truncated")


def test_alpha_palette_and_16_bit_images_become_plain_rgb_thumbnails(tmp_path):
    from PIL import Image
    Image.new("RGBA", (400, 100), (10, 200, 10, 0)).save(tmp_path / "alpha.png")
    Image.new("RGB", (400, 100), (200, 10, 10)).convert("P").save(tmp_path / "palette.gif")
    Image.new("I;16", (400, 100), 40_000).save(tmp_path / "deep.png")  # 16-bit grey: 40000 / 256 = 156
    for name, colour in (("alpha.png", (10, 200, 10)), ("palette.gif", (200, 10, 10)),
                         ("deep.png", (156, 156, 156))):
        thumb = Image.open(io.BytesIO(thumbnail_jpeg(tmp_path / name)))
        assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (MAX_SIDE, MAX_SIDE // 4))
        assert all(abs(a - b) <= 8 for a, b in zip(thumb.getpixel((50, 20)), colour)), name


def test_report_size_grows_with_thumbnails_not_originals(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        large_photo(photos / ("big%d.jpg" % i), seed=i)
    originals = sum(p.stat().st_size for p in photos.iterdir())
    assert originals > 10_000_000
    run_dir = make_run(tmp_path / "results", [("h1", "ok", None, [
        ok("photos/big%d.jpg" % i, m, "cat") for i in range(3) for m in MODELS])], cwd=tmp_path)
    report = write_report([run_dir])
    assert report == run_dir / "report.html"
    text = report.read_text()
    assert text.count("data:image/jpeg;base64,") == 3
    assert report.stat().st_size < 3 * 40_000 + 40_000  # three thumbnails and the page itself


def test_report_is_self_contained_and_escapes_what_the_results_say(tmp_path):
    run_dir = make_run(tmp_path, [("<b>h1&", "partial", "error <i>x</i>", [
        ok("a.jpg", "m", "</script><img src=x onerror=alert(1)>"), failed("b.jpg", "m", "<script>")])],
        models=["m"], cwd=tmp_path)
    text = write_report([run_dir]).read_text()
    assert "&lt;b&gt;h1&amp;" in text and "error &lt;i&gt;x&lt;/i&gt;" in text
    assert "<img src=x" not in text and text.count("<script") == 2
    # Nothing outside the file: no src/href attributes, no CSS url() or @import (outside the data,
    # where the results' own text is inert JSON).
    page = re.sub(r'<script type="application/json" id="report-data">.*?</script>', "", text, flags=re.S)
    assert len(page) < len(text) - 100
    assert not re.search(r"""\s(src|href)\s*=""", page)
    assert "url(" not in page and "@import" not in page


def test_missing_originals_and_urls_get_a_reason_instead_of_a_picture(tmp_path):
    run_dir = make_run(tmp_path, [("h1", "ok", None, [
        ok("moved/cat.jpg", "m", "cat"), ok("http://127.0.0.1:1/dog.jpg", "m", "dog")])], models=["m"], cwd=tmp_path)
    thumbs = html_report.thumbnails([load_run(run_dir)])
    assert thumbs[(0, "moved/cat.jpg")] == {"why": "not found on this machine: %s" % (tmp_path / "moved/cat.jpg")}
    assert "URL" in thumbs[(0, "http://127.0.0.1:1/dog.jpg")]["why"]


def test_report_command_writes_where_asked_and_needs_o_for_several_runs(tmp_path, mxlab_cli):
    one = make_run(tmp_path, [("h1", "ok", None, [ok("a.jpg", "m", "cat")])], models=["m"], run_id="r1")
    two = make_run(tmp_path, [("h1", "ok", None, [ok("a.jpg", "m", "dog")])], models=["m"], run_id="r2")
    code, out, err = mxlab_cli("report", one)
    assert code == 0, err
    assert out.strip() == "report: %s" % (one / "report.html")
    code, out, err = mxlab_cli("report", one, two)
    assert code == 2 and "-o FILE" in err
    code, out, err = mxlab_cli("report", one, two, "-o", tmp_path / "both.html")
    assert code == 0, err
    text = (tmp_path / "both.html").read_text()
    assert "run r1" in text and "run r2" in text
    code, out, err = mxlab_cli("report", one, "-o", tmp_path / "no" / "such" / "r.html")
    assert code == 2 and "does not exist" in err


# ---- in a real browser ---------------------------------------------------------------------

def test_compare_run_report_renders_in_chromium(conda_host, mxlab_cli, local_zoo, sample_photos, tmp_path,
                                                browser_page, monkeypatch):
    photos = tmp_path / "photos"
    shutil.copytree(sample_photos, photos)
    (photos / "broken.jpg").write_bytes(b"this is not a JPEG")
    monkeypatch.chdir(tmp_path)  # inputs as an operator types them: relative to where mxlab runs
    code, out, err = mxlab_cli("compare", *direct_args(conda_host), "--zoo", local_zoo, "--models", ",".join(MODELS),
                               "--top-k", "3", "--results", "results", "photos")
    assert code == 3, err  # broken.jpg failed, the rest classified
    (line,) = [l for l in out.splitlines() if l.startswith("report: ")]
    report = tmp_path / line[len("report: "):]
    assert report.name == "report.html" and (report.parent / "summary.json").is_file()
    facts = json.loads((report.parent / "run.json").read_text())
    assert facts["models"] == MODELS and facts["cwd"] == str(tmp_path)

    seen = open_report(browser_page, report, tmp_path / "compare-report.png")
    assert seen["images"] == 4 and seen["broken"] == []
    assert seen["labels"].count("espresso") == 2  # coffee.jpg, one column per model
    assert len(seen["labels"]) == 4 * 2 * 3  # photos x models x top-k, all visible
    assert seen["placeholders"] == ["not an image Pillow can decode"]
    assert len(seen["errors"]) == 2 and all(e.startswith("error: ") for e in seen["errors"])
    assert (tmp_path / "compare-report.png").stat().st_size > 10_000


def test_fleet_report_pages_through_every_host_in_chromium(tmp_path, sample_photos, browser_page):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(30):  # 120 files: 3 pages per host at 50 a page
        for p in sample_photos.glob("*.jpg"):
            shutil.copy(p, photos / ("%02d-%s" % (i, p.name)))
    names = sorted(photos.iterdir())
    records = [ok(p, "efficientnet-lite0", "cat", "dog") for p in names]
    run_dir = make_run(tmp_path / "results", [
        ("attendee-1", "ok", None, records),
        ("attendee-2", "partial", "some inputs failed", records[:-1] + [failed(names[-1], "efficientnet-lite0",
                                                                               "cannot decode")]),
        ("attendee-3", "failed", "attendee-3 (10.0.0.3): connection failed: refused", [])],
        models=["efficientnet-lite0"])
    report = write_report([run_dir])
    # Copies of 4 photos: one thumbnail for each picture, shared by its copies and by every host.
    assert report.read_text().count("data:image/jpeg;base64,") == 4

    seen = open_report(browser_page, report, tmp_path / "fleet-report.png")
    assert [h["pages"] for h in seen["hosts"]] == [3, 3, 1]
    assert [h["rows"] for h in seen["hosts"]] == [120, 120, 0]
    assert seen["images"] == 240 and seen["broken"] == []
    assert "connection failed: refused" in seen["hosts"][2]["summary"]
    assert seen["errors"] == ["error: cannot decode"]


def test_the_browser_check_sees_errors_and_requests(tmp_path, browser_page):
    # The checks above can fail: a page with a console error, an uncaught exception and a
    # missing image is caught, and so is every request it makes.
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img src='missing.png'>"
                    "<script>console.error('boom'); throw new Error('uncaught');</script></body></html>")
    browser_page.goto(page.as_uri())
    browser_page.evaluate("new Promise(r => setTimeout(r, 100))")
    text = "\n".join(browser_page.errors)
    assert "console.error: boom" in text and "uncaught" in text and "missing.png" in text
    assert (tmp_path / "missing.png").as_uri() in browser_page.requests
