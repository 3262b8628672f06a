"""Reading published chapters back through MangaDex@Home (mdupload/athome.py, pull.py, verify.py), against the sandbox.

Each of MangaDex@Home's rules is proved from the sandbox's own request log and its recorded
reports: no token on image requests, a report for every image, a new base URL after a 403 or a
failing node (a few at most, within the at-home rate limit), resumable pulls, and verify's checks.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests
import responses
from PIL import Image

from mdupload.athome import (
    REPORT_URL_ENV,
    AtHomeError,
    AtHomeReader,
    ChapterNotFound,
    NotReadableYet,
    image_session,
)
from mdupload.errors import UsageError
from mdupload.ledger import Ledger
from mdupload.mangadex.auth import Credentials
from mdupload.mangadex.client import MangaDexClient
from mdupload.manifest import load_manifest
from mdupload.output import Reporter
from mdupload.publish import upload_manifest
from mdupload.pull import MAX_FAILING_NODES, PULL_RECORD, pull_chapter
from mdupload.sandbox import SandboxConfig, start_sandbox
from mdupload.upload import UploadOptions
from mdupload.verify import local_pages_from_disk, verify_chapters
from tests.e2e import copy_example

DEMO = Credentials(username="demo", password="demo", client_id="mdupload-demo", client_secret="demo-secret")
EXAMPLE_C001 = [f"{n}.png" for n in range(1, 11)]


# --- helpers ---------------------------------------------------------------------------------------


def client_for(sandbox, *, credentials=None, rate_limits: bool = False) -> MangaDexClient:
    kwargs = {} if rate_limits else {"rate_limiter": None}
    return MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, credentials=credentials, **kwargs)


def publish_example(sandbox, folder: Path, client: MangaDexClient | None = None, chapters=(), fix: bool = False):
    """Upload manifests/example.yaml (a private copy, unless there is one in `folder`; all chapters unless some
    are named) with mdupload's own upload: (manifest, ledger, {chapter number: chapter id})."""
    copied = folder / "series" / "example.yaml"
    manifest = load_manifest(copied if copied.exists() else copy_example(folder / "series"))
    ledger = Ledger(folder / "ledger.sqlite")
    client = client or client_for(sandbox, credentials=DEMO)
    with tempfile.TemporaryDirectory() as work:
        outcome = upload_manifest(manifest, manifest.select(chapters), Path(work), connect=lambda: client, ledger=ledger,
                                  reporter=Reporter(quiet=True), options=UploadOptions(),
                                  api_url=client.transport.api_url, accept_terms=True, fix=fix)
    assert outcome.ok, [r.error for r in outcome.results]
    return manifest, ledger, {r.plan.draft["chapter"]: r.chapter_id for r in outcome.results}


def reader_for(sandbox, client: MangaDexClient | None = None, **kwargs) -> AtHomeReader:
    return AtHomeReader(client or client_for(sandbox), environ={REPORT_URL_ENV: sandbox.report_url}, **kwargs)


def image_requests(sandbox) -> list[dict]:
    return [r for r in sandbox.state()["requests"] if "/data/" in r["path"] or "/data-saver/" in r["path"]]


def athome_asks(sandbox) -> list[dict]:
    return [r for r in sandbox.state()["requests"] if r["path"].startswith("/at-home/server/")]


def token_of(url: str) -> str:
    """The base URL's token: the first path segment of an image URL on the sandbox's node."""
    return url.split("//", 1)[1].split("/")[1]


def c001(series_folder: Path) -> list[bytes]:
    return [(series_folder / "series" / "chapters" / "c001" / name).read_bytes() for name in EXAMPLE_C001]


def picture(path: Path, size: tuple[int, int], colour: int) -> None:
    Image.new("RGB", size, (colour, 20, 200)).save(path)


@pytest.fixture
def sandbox():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as running:
        yield running


@pytest.fixture
def published(sandbox, tmp_path):
    return publish_example(sandbox, tmp_path)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MDUPLOAD_CACHE_DIR", str(tmp_path / "cache"))  # --fix's cache, used by verify --download


# --- pull: the rules -------------------------------------------------------------------------------


def test_pages_arrive_in_order_with_no_token_on_any_image_and_a_report_for_each(sandbox, tmp_path, monkeypatch):
    client = client_for(sandbox, credentials=DEMO)
    _manifest, _ledger, ids = publish_example(sandbox, tmp_path, client)
    # requests would add a ~/.netrc login to a session without auth: the image session must not.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter22\n")
    monkeypatch.setenv("NETRC", str(netrc))

    result = pull_chapter(reader_for(sandbox, client), ids["1"], tmp_path / "pulled")

    assert [f.name for f in result.files] == [f"{n:03d}.png" for n in range(1, 11)]
    assert [f.read_bytes() for f in result.files] == c001(tmp_path)
    assert (result.downloaded, result.kept, result.new_base_urls) == (10, 0, 0)
    state = sandbox.state()
    assert any(r["authorization"] for r in state["requests"] if r["path"].startswith("/upload"))  # it had a token
    images = image_requests(sandbox)
    assert len(images) == 10 and not any(r["authorization"] for r in images)
    assert not any(r["authorization"] for r in athome_asks(sandbox))
    reports = state["reports"]
    assert len(reports) == 10 and not any(r["authorization"] for r in reports)
    assert sorted(r["url"].split("/", 3)[3] for r in reports) == sorted(r["path"].lstrip("/") for r in images)
    sizes = {r["url"].rsplit("/", 1)[1]: r["bytes"] for r in reports}
    served = [p for c in state["chapters"] if c["id"] == ids["1"] for p in c["pages"]]
    assert sizes == {p["name"]: p["fileSize"] for p in served}
    assert all(r["success"] is True and r["cached"] is False and isinstance(r["duration"], int) for r in reports)


def test_a_second_pull_downloads_nothing_and_a_lost_page_is_fetched_again(sandbox, published, tmp_path):
    _manifest, _ledger, ids = published
    reader = reader_for(sandbox)
    dest = tmp_path / "pulled"
    pull_chapter(reader, ids["1"], dest)
    before = len(image_requests(sandbox))

    again = pull_chapter(reader, ids["1"], dest)
    assert (again.downloaded, again.kept) == (0, 10)
    assert len(image_requests(sandbox)) == before

    (dest / "003.png").unlink()
    (dest / "007.png").write_bytes(b"half a pag")  # not the size the record says: not complete
    (dest / "008.png.part").write_bytes(b"left by a killed run")
    third = pull_chapter(reader, ids["1"], dest)
    assert (third.downloaded, third.kept) == (2, 8)
    assert [f.read_bytes() for f in third.files] == c001(tmp_path)
    assert sorted(p.name for p in dest.iterdir()) == [PULL_RECORD] + [f"{n:03d}.png" for n in range(1, 11)]
    assert [r["cached"] for r in sandbox.state()["reports"][-2:]] == [True, True]  # X-Cache: HIT the second time


def test_a_pull_never_overwrites_files_it_did_not_write(sandbox, published, tmp_path):
    _manifest, _ledger, ids = published
    reader = reader_for(sandbox)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "001.png").write_bytes(b"my own scan")
    with pytest.raises(UsageError, match="001.png, which mdupload did not write"):
        pull_chapter(reader, ids["1"], mine)
    assert (mine / "001.png").read_bytes() == b"my own scan"

    pull_chapter(reader, ids["2"], tmp_path / "two")
    with pytest.raises(UsageError, match=f"holds the pages of another chapter \\({ids['2']}\\)"):
        pull_chapter(reader, ids["1"], tmp_path / "two")


def test_links_planted_in_the_folder_are_never_written_through(sandbox, published, tmp_path):
    """`ln -s ~/victim DEST/.mdupload-pull.json.tmp` (and at every name a pull of older versions wrote):
    the victims are untouched, the links are not followed, the pages arrive."""
    _manifest, _ledger, ids = published
    dest = tmp_path / "pulled"
    dest.mkdir()
    victims = {}
    for planted in (PULL_RECORD + ".tmp", "001.png.part", "002.png.part"):
        victim = tmp_path / f"victim-{planted}"
        victim.write_bytes(b"precious")
        (dest / planted).symlink_to(victim)
        victims[planted] = victim
    result = pull_chapter(reader_for(sandbox), ids["1"], dest)
    assert [f.read_bytes() for f in result.files] == c001(tmp_path)
    assert all(victim.read_bytes() == b"precious" for victim in victims.values())
    assert not any(p.is_symlink() and p.name.endswith(".part") for p in dest.iterdir())  # leftovers removed
    assert not (dest / PULL_RECORD).is_symlink()


def test_data_saver_pages_come_from_data_saver(sandbox, published, tmp_path):
    _manifest, _ledger, ids = published
    result = pull_chapter(reader_for(sandbox), ids["2"], tmp_path / "small", data_saver=True)
    assert [f.name for f in result.files] == [f"{n:03d}.jpg" for n in range(1, 7)]
    assert all("/data-saver/" in r["path"] for r in image_requests(sandbox))


def test_a_failing_node_is_replaced_and_every_failure_is_reported(tmp_path):
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, athome_fail_rate=0.3, seed=11)) as sandbox:
        _manifest, _ledger, ids = publish_example(sandbox, tmp_path)
        result = pull_chapter(reader_for(sandbox), ids["1"], tmp_path / "pulled")
        state = sandbox.state()
    assert state["faults"]["injected"].get("athome_fail", 0) >= 1  # the seed makes nodes fail
    assert [f.read_bytes() for f in result.files] == c001(tmp_path)
    assert result.new_base_urls >= 1 and len([r for r in state["requests"] if "/at-home/" in r["path"]]) >= 2
    reports = state["reports"]
    failed = [r for r in reports if not r["success"]]
    assert failed and all(r["bytes"] == 0 for r in failed)
    assert len(reports) == len([r for r in state["requests"] if "/data/" in r["path"]])  # one per image request
    for failure in failed:  # the same page came later, from another base URL
        name = failure["url"].rsplit("/", 1)[1]
        later = [r for r in reports[reports.index(failure) + 1:] if r["success"] and r["url"].endswith("/" + name)]
        assert later and token_of(later[0]["url"]) != token_of(failure["url"])


def test_an_expired_base_url_403_brings_a_new_one(tmp_path):
    session = image_session(1)
    plain_get, calls = session.get, []

    def get_slowly_after_the_first_page(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            time.sleep(0.6)  # longer than a base URL lives
        return plain_get(*args, **kwargs)

    session.get = get_slowly_after_the_first_page
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, athome_url_ttl=0.5)) as sandbox:
        _manifest, _ledger, ids = publish_example(sandbox, tmp_path)
        result = pull_chapter(reader_for(sandbox, concurrency=1, session=session), ids["2"], tmp_path / "pulled")
        state = sandbox.state()
    statuses = [r["status"] for r in state["requests"] if "/data/" in r["path"]]
    assert 403 in statuses and statuses[-1] == 200
    assert result.new_base_urls >= 1 and len(result.files) == 6
    expired = [r for r in state["reports"] if not r["success"]]
    assert len(expired) == statuses.count(403)


def test_nodes_that_never_work_are_given_up_within_a_few_base_urls_and_the_rate_limit(tmp_path):
    with start_sandbox(SandboxConfig(athome_fail_rate=1.0, seed=1, processing_delay=0)) as sandbox:  # MangaDex's rate limits on
        client = client_for(sandbox, credentials=DEMO, rate_limits=True)
        _manifest, _ledger, ids = publish_example(sandbox, tmp_path, client, chapters=["1"])
        reader = reader_for(sandbox, client)  # one client, one rate limiter for everything this process sends
        with pytest.raises(AtHomeError) as raised:
            pull_chapter(reader, ids["1"], tmp_path / "pulled")
        asks = athome_asks(sandbox)
    assert str(raised.value).startswith(f"MangaDex@Home failed to serve chapter {ids['1']} from {MAX_FAILING_NODES} "
                                        "base URLs in a row (last: ")
    assert "0 of 10 pages are in" in str(raised.value) and "try again later" in str(raised.value)
    assert len(asks) == MAX_FAILING_NODES and all(a["status"] == 200 for a in asks)
    assert not list((tmp_path / "pulled").glob("*.png"))


def test_a_chapter_not_processed_yet_is_not_readable_until_it_is(tmp_path):
    # held for approval, so that the upload does not wait for MangaDex to list (process) it
    config = SandboxConfig(rate_limits=False, processing_delay=1.0, approval_required=("*:*",), approval_delay=5)
    with start_sandbox(config) as sandbox:
        _manifest, _ledger, ids = publish_example(sandbox, tmp_path)
        reader = reader_for(sandbox)
        with pytest.raises(NotReadableYet, match="still processing"):
            pull_chapter(reader, ids["1"], tmp_path / "early")
        assert reader.wait_until_readable([ids["1"]], 0).readable == {}
        waits = []
        found = reader.wait_until_readable([ids["1"]], 20, on_wait=lambda pending, pause: waits.append(pause))
    assert list(found.readable) == [ids["1"]] and found.readable[ids["1"]].data
    assert waits and waits[0] == 1.0


def test_an_unknown_chapter_is_named(sandbox, tmp_path):
    with pytest.raises(ChapterNotFound, match="MangaDex has no chapter 0b9e5e3c-5d07-4d5f-a1c6-1b1e5d2c7a10"):
        pull_chapter(reader_for(sandbox), "0b9e5e3c-5d07-4d5f-a1c6-1b1e5d2c7a10", tmp_path / "x")


# --- the rules where the sandbox cannot go: MangaDex's own hosts, a report endpoint that fails ---------


API = "https://api.mangadex.org"
CHAPTER = "0b9e5e3c-5d07-4d5f-a1c6-1b1e5d2c7a10"


def _served(http, base_url: str, report_status: int | None) -> None:
    http.get(f"{API}/at-home/server/{CHAPTER}", json={
        "result": "ok", "baseUrl": base_url, "chapter": {"hash": "abc", "data": ["x1-a.png"], "dataSaver": []}})
    http.get(f"{base_url}/data/abc/x1-a.png", body=b"\x89PNG page", headers={"X-Cache": "HIT from node"})
    if report_status is None:
        http.post("https://api.mangadex.network/report", body=requests.ConnectionError("report host down"))
    else:
        http.post("https://api.mangadex.network/report", status=report_status)


def test_images_from_mangadex_org_are_not_reported(tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        _served(http, "https://uploads.mangadex.org", 200)
        reader = AtHomeReader(MangaDexClient(rate_limiter=None), environ={})
        assert pull_chapter(reader, CHAPTER, tmp_path / "p").downloaded == 1
        assert [c.request.url for c in http.calls if "report" in c.request.url] == []


@pytest.mark.parametrize("report_status", [500, None], ids=["report answered 500", "report host unreachable"])
def test_a_failed_report_is_ignored(tmp_path, report_status):
    with responses.RequestsMock() as http:
        _served(http, "https://abc.xyz.mangadex.network:44300/tok", report_status)
        reader = AtHomeReader(MangaDexClient(rate_limiter=None), environ={})
        result = pull_chapter(reader, CHAPTER, tmp_path / "p")
        [report] = [c.request for c in http.calls if c.request.url.endswith("/report")]
    assert result.files[0].read_bytes() == b"\x89PNG page"
    assert report.body and b'"cached": true' in report.body and b'"bytes": 9' in report.body
    assert "Authorization" not in report.headers


# --- verify ----------------------------------------------------------------------------------------


def test_verify_checks_count_and_order_from_the_served_names(sandbox, published):
    manifest, ledger, ids = published
    checks = verify_chapters(manifest, manifest.chapters, ledger, reader_for(sandbox))
    assert [(c.status, c.checked, c.served, c.expected, c.chapter_id) for c in checks] == [
        ("verified", "names", 10, 10, ids["1"]), ("verified", "names", 6, 6, ids["2"]),
        ("verified", "names", 4, 4, ids["2.5"])]
    assert image_requests(sandbox) == []  # nothing downloaded without --download


def test_verify_tells_an_out_of_order_chapter_from_the_ledger(sandbox, published):
    manifest, ledger, _ids = published
    key = manifest.chapter_key(manifest.chapters[0], sandbox.api_url)
    pages = ledger.pages(key)
    swapped = [pages[1], pages[0], *pages[2:]]  # as if pages 1 and 2 had been uploaded the other way round
    ledger.plan_pages(key, [(p.origin, p.upload_name, p.size, p.sha256) for p in swapped])
    [check] = verify_chapters(manifest, manifest.chapters[:1], ledger, reader_for(sandbox))
    assert check.status == "differs" and not check.ok
    assert [(d.position, d.problem) for d in check.differences] == [
        (1, "out of order: MangaDex@Home serves another uploaded page here"),
        (2, "out of order: MangaDex@Home serves another uploaded page here")]


def _reencoded(path: Path, quality: int) -> None:
    """The page as MangaDex might serve it re-encoded: through JPEG at `quality`, stored under its own name."""
    with Image.open(path) as page:
        buffer = io.BytesIO()
        page.convert("RGB").save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as lossy:
        lossy.save(path)


def test_verify_download_compares_every_page_with_the_local_one(sandbox, published, tmp_path):
    manifest, ledger, _ids = published
    folder = manifest.path.parent / "chapters" / "c001"
    with Image.open(folder / "4.png") as page:
        size = page.size
    _reencoded(folder / "4.png", 60)  # other bytes, the same picture: as if MangaDex had re-encoded it
    picture(folder / "3.png", (size[0] + 10, size[1]), 2)  # another picture size
    shutil.copy(folder / "8.png", folder / "6.png")  # another picture of the same size (pages 6 and 8 look alike)
    folder.joinpath("9.png").write_bytes((folder / "10.png").read_bytes())  # and another
    checks = verify_chapters(manifest, manifest.chapters, ledger, reader_for(sandbox), download=True,
                             workdir=tmp_path / "served", local_pages=local_pages_from_disk(tmp_path / "local"))
    first, second, third = checks
    assert (second.status, third.status) == ("verified", "verified") and second.checked == "pages"
    assert first.status == "differs"
    assert [(d.position, d.page.rsplit("/", 1)[-1]) for d in first.differences] == [
        (3, "3.png"), (6, "6.png"), (9, "9.png")]
    assert first.differences[0].problem == (f"served {size[0]}x{size[1]} px, the local page is "
                                            f"{size[0] + 10}x{size[1]} px")
    assert first.differences[1].problem.startswith(f"another picture of the same size ({size[0]}x{size[1]} px)")
    assert len(image_requests(sandbox)) == 20 and len(sandbox.state()["reports"]) == 20


def test_verify_download_finds_two_pages_swapped(sandbox, published, tmp_path):
    manifest, ledger, _ids = published
    folder = manifest.path.parent / "chapters" / "c001"
    first_page, second_page = (folder / "1.png").read_bytes(), (folder / "2.png").read_bytes()
    (folder / "1.png").write_bytes(second_page)
    (folder / "2.png").write_bytes(first_page)
    [check] = verify_chapters(manifest, manifest.chapters[:1], ledger, reader_for(sandbox), download=True,
                              workdir=tmp_path / "served", local_pages=local_pages_from_disk(tmp_path / "local"))
    assert check.status == "differs"
    assert [d.position for d in check.differences] == [1, 2]


def test_verify_says_which_chapters_are_processing_missing_or_never_uploaded(tmp_path):
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=3600)) as sandbox:
        manifest, ledger, ids = publish_example(sandbox, tmp_path)
        one, two, half = manifest.chapters
        # a chapter MangaDex does not have
        ledger.record(manifest.chapter_key(two, sandbox.api_url), "COMMITTED", chapter_id=CHAPTER)
        other = Ledger(tmp_path / "other.sqlite")
        other.record(manifest.chapter_key(one, sandbox.api_url), "COMMITTED", chapter_id=ids["1"])
        checks = verify_chapters(manifest, [one, two], ledger, reader_for(sandbox))
        [never] = verify_chapters(manifest, [half], Ledger(tmp_path / "empty.sqlite"), reader_for(sandbox))
    assert [(c.status, c.ok) for c in checks] == [("processing", True), ("not-found", False)]
    assert checks[0].served == 0 and CHAPTER in checks[1].error
    assert (never.status, never.ok) == ("not-uploaded", False) and "upload it first" in never.error


def test_verify_download_finds_the_repaired_pages_of_an_upload_with_fix(sandbox, tmp_path):
    series = copy_example(tmp_path / "series")
    picture(series.parent / "chapters" / "c002.5" / "5.png", (60, 10_400), 3)  # too tall: --fix splits it
    manifest, ledger, _ids = publish_example(sandbox, tmp_path, chapters=["2.5"], fix=True)
    uploaded = [p.upload_name for p in ledger.pages(manifest.chapter_key(manifest.chapters[2], sandbox.api_url))]
    assert len(uploaded) == 6  # four pages and the strip in two
    local = local_pages_from_disk(tmp_path / "local")
    assert sorted(local(manifest.chapters[2])) == sorted(uploaded)  # the pieces, compared by their sizes if need be
    [check] = verify_chapters(manifest, manifest.chapters[2:], ledger, reader_for(sandbox), download=True,
                              workdir=tmp_path / "served", local_pages=local)
    assert (check.status, check.served, check.checked) == ("verified", 6, "pages")
