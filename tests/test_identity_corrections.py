"""Corrections of a chapter's credit and volume (docs/identity.md): a published chapter whose groups, or whose
volume (a numbered chapter), changed in the manifest is reported, then corrected in place with --replace;
never published a second time. End to end through the command line and the sandbox."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mdupload.ledger import Ledger
from mdupload.mangadex.auth import Credentials
from mdupload.mangadex.client import MangaDexClient
from mdupload.manifest import load_manifest
from mdupload.pairing import pair_with_published
from mdupload.publish import build_plan, check_all
from mdupload.sandbox import DEMO_GROUP, SECOND_GROUP
from mdupload.upload import ChapterUpload, UploadOptions
from mdupload.vocabulary import ChapterKey
from tests.e2e import cli_env, copy_example, run_cli
from tests.test_identity import _Killed, _KillAt

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
A, B = DEMO_GROUP, SECOND_GROUP  # sorted: A+B is how a change names the pair


def _manifest(tmp_path: Path, chapters: str, groups: str = f"[{A}, {B}]") -> Path:
    manifest = copy_example(tmp_path / "series").with_name("credit.yaml")
    manifest.write_text(f"manga: {MANGA}\ngroups: {groups}\nlanguage: en\nterms_accepted: true\nchapters:\n{chapters}")
    return manifest


CH12 = '  - chapter: "12"\n    volume: "2"\n    pages: chapters/c002.5\n'


# --- which published chapter a changed one is paired with (pairing.py), at each boundary ---------------------

API = "http://127.0.0.1:8001"


def _key(**parts):
    chapter = {"api": API, "manga": MANGA, "language": "en", "groups": (A, B), "volume": "2", "chapter": "12",
               "title": None, **parts}
    return ChapterKey.of(**chapter)


def _published(ledger: Ledger, key: ChapterKey, chapter_id: str, *, committed: bool = True) -> None:
    """A chapter this ledger published (committed), or one it skipped as found on MangaDex (not committed)."""
    ledger.record(key, "COMMITTED" if committed else "SKIPPED", chapter_id=chapter_id)


@pytest.mark.parametrize("changed, paired", [
    ({"groups": (A,)}, True),  # the credit
    ({"volume": "3"}, True),  # a numbered chapter's volume
    ({"groups": (B,), "volume": None}, True),  # both
    ({"language": "fr"}, False),  # a French release is not a correction of the English one
    ({"chapter": "13"}, False),  # another number
    ({"api": "http://127.0.0.1:8002"}, False),  # another MangaDex
])
def test_a_changed_chapter_is_paired_only_when_it_differs_by_groups_or_a_numbered_chapters_volume(
        tmp_path, changed, paired):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    _published(ledger, _key(), "chapter-1")
    pairing = pair_with_published(ledger, [_key(**changed)]).get(_key(**changed))
    assert (pairing is not None and pairing.published.chapter_id == "chapter-1") is paired
    ledger.close()


def test_oneshots_and_volume_only_releases_keep_their_title_and_volume_as_identity(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    summer = _key(chapter=None, volume=None, title="Summer Special")
    volume_7 = _key(chapter=None, volume="7")
    _published(ledger, summer, "summer")
    _published(ledger, volume_7, "volume-7")
    keys = [summer._replace(groups=(A,)), _key(chapter=None, volume=None, title="Winter Special", groups=(A,)),
            volume_7._replace(groups=(A,)), _key(chapter=None, volume="8", groups=(A,))]
    pairings = pair_with_published(ledger, keys)
    assert {key: p.published.chapter_id for key, p in pairings.items()} == {keys[0]: "summer", keys[2]: "volume-7"}
    ledger.close()


def test_a_published_chapter_is_paired_only_when_no_chapter_claims_it_and_this_ledger_committed_it(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    _published(ledger, _key(), "ours")
    _published(ledger, _key(chapter="13"), "found-on-mangadex", committed=False)
    still_wanted = pair_with_published(ledger, [_key(), _key(groups=(A,))])
    assert still_wanted == {}  # ch 12 A+B is still in the manifest: ch 12 A is another release
    assert pair_with_published(ledger, [_key(chapter="13", groups=(A,))]) == {}  # perhaps another uploader's
    ledger.record(_key(groups=(A,)), "BEGINNING")  # ch 12 A is being published as a release of its own
    ledger.record(_key(groups=(A,)), "UPLOADING", session_id="session-1")
    assert pair_with_published(ledger, [_key(groups=(A,))]) == {}
    ledger.close()


def test_a_pairing_is_one_to_one_or_ambiguous(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    _published(ledger, _key(groups=(A,)), "by-a")
    _published(ledger, _key(groups=(B,)), "by-b")
    [both] = pair_with_published(ledger, [_key()]).values()  # A+B: the release of A, or of B?
    assert both.ambiguous and {p.chapter_id for p in both.candidates} == {"by-a", "by-b"}
    ledger.close()
    ledger = Ledger(tmp_path / "other.sqlite")
    _published(ledger, _key(), "by-a-and-b")
    pairings = pair_with_published(ledger, [_key(groups=(A,)), _key(groups=(B,))])  # which one is it now?
    assert len(pairings) == 2 and all(p.ambiguous for p in pairings.values())
    ledger.close()


# --- end to end ------------------------------------------------------------------------------------------------

def _requests(sandbox, since: int) -> list[dict]:
    return sandbox.state()["requests"][since:]


def _page_posts(requests: list[dict]) -> list[dict]:
    return [r for r in requests if r["method"] == "POST" and re.fullmatch(r"/upload/[0-9a-f-]{36}", r["path"])]


def _chapters(sandbox) -> list[dict]:
    return sandbox.state()["chapters"]


def _upload(manifest: Path, env: dict, *extra: str):
    return run_cli(["upload", str(manifest), "--json", *extra], env)


def test_a_change_of_groups_is_reported_then_corrected_in_place_with_replace(sandbox, tmp_path):
    manifest = _manifest(tmp_path, CH12)
    ledger_path = tmp_path / "ledger.sqlite"
    env = cli_env(sandbox, ledger_path)
    first = _upload(manifest, env)
    assert first.code == 0, first.stderr
    [published] = first.json["chapters"]
    chapter_id = published["chapter_id"]
    assert sorted(_chapters(sandbox)[0]["groups"]) == [A, B]

    manifest.write_text(manifest.read_text().replace(f"groups: [{A}, {B}]", f"groups: [{A}]"))
    step_summary = tmp_path / "step-summary.md"
    actions = dict(env, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(step_summary))
    noticed = _upload(manifest, actions)
    assert re.search(r"::warning file=[^:]*credit\.yaml,line=\d+,title=mdupload%3A vol 2 chapter 12 \(en\) differs",
                     noticed.stderr)
    # Exit 0: nothing failed and nothing was published; the notice (and, in GitHub Actions, a warning) says what to do.
    assert noticed.code == 0, noticed.stderr
    [result] = noticed.json["chapters"]
    assert (result["status"], result["chapter_id"], result["changed"]) == ("skipped", chapter_id, ["groups"])
    # Named as MangaDex names them where the run knows the name (the manifest's group), else by id.
    assert (f"vol 2 chapter 12 (en): changed since it was published as chapter {chapter_id}: groups Sandbox Scans+{B} "
            "-> Sandbox Scans" in noticed.stderr)
    assert "--replace" in noticed.stderr and "--force-new to publish it as another release" in noticed.stderr
    assert len(_chapters(sandbox)) == 1 and sorted(_chapters(sandbox)[0]["groups"]) == [A, B]
    status = run_cli(["status", str(manifest), "--json", "--api-url", sandbox.api_url], env)
    [waiting] = status.json["chapters"]
    assert (waiting["state"], waiting["chapter_id"]) == ("committed", chapter_id)
    assert waiting["published_as"] == f"groups {A}+{B}, volume 2" and "--replace" in status.stderr

    since = len(sandbox.state()["requests"])
    corrected = _upload(manifest, actions, "--replace")
    assert corrected.code == 0, corrected.stderr
    assert "::notice file=" in corrected.stderr
    assert f"chapter {chapter_id} corrected in place (groups)" in corrected.stderr
    assert "| vol 2 chapter 12 (en) | corrected | 4 |" in step_summary.read_text()
    assert "| skipped | 4 |" in step_summary.read_text() and "changed: groups" in step_summary.read_text()
    [result] = corrected.json["chapters"]
    assert (result["status"], result["chapter_id"], result["corrected"]) == ("corrected", chapter_id, ["groups"])
    assert corrected.json["summary"]["corrected"] == 1 and corrected.json["summary"]["published"] == 0
    assert f"corrected in place (groups) as chapter {chapter_id}" in corrected.stderr
    [chapter] = _chapters(sandbox)
    assert chapter["id"] == chapter_id and chapter["groups"] == [A]  # the credit, corrected on the same chapter
    requests = _requests(sandbox, since)
    assert _page_posts(requests) == [] and not [r for r in requests if r["path"].startswith("/upload/begin")]
    assert [r["method"] for r in requests if r["path"] == f"/chapter/{chapter_id}" and r["method"] == "PUT"] == ["PUT"]
    ledger = Ledger(ledger_path)
    key = load_manifest(manifest).chapter_key(load_manifest(manifest).chapters[0], sandbox.api_url)
    assert key.groups == (A,) and ledger.chapter(key).chapter_id == chapter_id
    assert ledger.chapter(key._replace(groups=(A, B))) is None  # the record took the new identity
    ledger.close()

    again = _upload(manifest, env, "--replace")
    assert again.code == 0 and again.json["chapters"][0]["status"] == "skipped"
    assert "changed since" not in again.stderr and len(_chapters(sandbox)) == 1
    status = run_cli(["status", str(manifest), "--json", "--api-url", sandbox.api_url], env)
    [shown] = status.json["chapters"]
    assert (shown["state"], shown["corrected"], shown["published_as"]) == ("committed", ["groups"], None)
    assert "corrected in place" in status.stderr


def test_a_numbered_chapter_moved_to_another_volume_is_corrected_in_place(sandbox, tmp_path):
    manifest = _manifest(tmp_path, CH12, groups=f"[{A}]")
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    chapter_id = _upload(manifest, env).json["chapters"][0]["chapter_id"]
    manifest.write_text(manifest.read_text().replace('volume: "2"', 'volume: "3"'))
    noticed = _upload(manifest, env)
    assert noticed.code == 0 and noticed.json["chapters"][0]["status"] == "skipped"
    assert f"published as chapter {chapter_id}: volume '2' -> '3'" in noticed.stderr
    assert len(_chapters(sandbox)) == 1 and _chapters(sandbox)[0]["volume"] == "2"
    since = len(sandbox.state()["requests"])
    corrected = _upload(manifest, env, "--replace")
    assert corrected.code == 0, corrected.stderr
    [result] = corrected.json["chapters"]
    assert (result["status"], result["chapter_id"], result["corrected"]) == ("corrected", chapter_id, ["volume"])
    [chapter] = _chapters(sandbox)
    assert (chapter["id"], chapter["volume"], chapter["chapter"]) == (chapter_id, "3", "12")
    assert _page_posts(_requests(sandbox, since)) == []
    again = _upload(manifest, env)
    assert again.json["chapters"][0]["status"] == "skipped" and "changed since" not in again.stderr


def test_groups_and_a_page_changed_are_corrected_by_a_put_then_an_edit_session(sandbox, tmp_path):
    from PIL import Image

    manifest = _manifest(tmp_path, CH12)
    ledger_path = tmp_path / "ledger.sqlite"
    env = cli_env(sandbox, ledger_path)
    chapter_id = _upload(manifest, env).json["chapters"][0]["chapter_id"]
    before = _chapters(sandbox)[0]
    manifest.write_text(manifest.read_text().replace(f"groups: [{A}, {B}]", f"groups: [{B}]"))
    page = next(p for p in sorted((manifest.parent / "chapters" / "c002.5").iterdir()) if p.suffix == ".png")
    with Image.open(page) as image:
        Image.new("RGB", image.size, (0, 120, 40)).save(page)
    since = len(sandbox.state()["requests"])
    corrected = _upload(manifest, env, "--replace")
    assert corrected.code == 0, corrected.stderr
    [result] = corrected.json["chapters"]
    assert (result["status"], result["chapter_id"]) == ("corrected", chapter_id)
    assert set(result["corrected"]) == {"groups", "pages"}
    [chapter] = _chapters(sandbox)
    assert chapter["groups"] == [B]
    changed = [old["originalFileName"] for old, new in zip(before["pages"], chapter["pages"], strict=True)
               if old["fileHash"] != new["fileHash"]]
    assert changed == [page.name] and len(_page_posts(_requests(sandbox, since))) == 1
    # The PUT first, then the edit session (begun with the chapter's new groups): both in the ledger, in order.
    put, begin = ("PUT", f"/chapter/{chapter_id}"), ("POST", f"/upload/begin/{chapter_id}")
    writes = [(r["method"], r["path"]) for r in _requests(sandbox, since) if (r["method"], r["path"]) in (put, begin)]
    assert writes == [put, begin]
    ledger = Ledger(ledger_path)
    key = load_manifest(manifest).chapter_key(load_manifest(manifest).chapters[0], sandbox.api_url)
    steps = [state for state, *_ in ledger.transitions(key)]
    assert steps.count("UPDATING") == 1 and steps.index("UPDATING") < steps.index("EDITING")
    assert steps[-1] == "COMMITTED"
    ledger.close()


def test_an_ambiguous_change_of_groups_is_neither_published_nor_corrected(sandbox, tmp_path):
    two = (f'  - chapter: "12"\n    volume: "2"\n    groups: [{A}]\n    pages: chapters/c002.5\n'
           f'  - chapter: "12"\n    volume: "2"\n    groups: [{B}]\n    pages: chapters/c002.5\n')
    manifest = _manifest(tmp_path, two)
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    first = _upload(manifest, env)
    assert [c["status"] for c in first.json["chapters"]] == ["uploaded", "uploaded"]
    # Both releases now listed as one, credited to A and B: which one it corrects, the run cannot tell.
    manifest.write_text(manifest.read_text().split("chapters:\n")[0] + "chapters:\n" + CH12)
    for flag in ((), ("--replace",)):
        rerun = _upload(manifest, env, *flag)
        assert rerun.code == 0, rerun.stderr
        [result] = rerun.json["chapters"]
        assert (result["status"], result["chapter_id"], result["changed"]) == ("skipped", None, ["groups"])
        assert "cannot tell which release it corrects" in rerun.stderr and "--force-new" in rerun.stderr
        assert all(c["chapter_id"] in rerun.stderr for c in first.json["chapters"])
        assert sorted(tuple(c["groups"]) for c in _chapters(sandbox)) == [(A,), (B,)]  # as they were
    forced = _upload(manifest, env, "--force-new")  # as another release, on purpose
    assert forced.code == 0, forced.stderr
    assert forced.json["chapters"][0]["status"] == "uploaded"
    assert sorted(tuple(sorted(c["groups"])) for c in _chapters(sandbox)) == [(A,), (A, B), (B,)]


def test_with_one_chapter_published_for_two_manifest_chapters_neither_is_taken_for_it(sandbox, tmp_path):
    manifest = _manifest(tmp_path, CH12)
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    chapter_id = _upload(manifest, env).json["chapters"][0]["chapter_id"]
    split = (f'  - chapter: "12"\n    volume: "2"\n    groups: [{A}]\n    pages: chapters/c002.5\n'
             f'  - chapter: "12"\n    volume: "2"\n    groups: [{B}]\n    pages: chapters/c002.5\n')
    manifest.write_text(manifest.read_text().split("chapters:\n")[0] + "chapters:\n" + split)
    rerun = _upload(manifest, env, "--replace")
    assert rerun.code == 0, rerun.stderr
    assert [(c["status"], c["chapter_id"]) for c in rerun.json["chapters"]] == [("skipped", None)] * 2
    assert rerun.stderr.count("cannot tell which release it corrects") == 2 and chapter_id in rerun.stderr
    [chapter] = _chapters(sandbox)
    assert sorted(chapter["groups"]) == [A, B]


KILLS = [("update_chapter", False), ("update_chapter", True), ("begin_edit_session", True), ("upload_files", True),
         ("commit", True)]


@pytest.mark.parametrize("method, after", KILLS, ids=[f"{m} {'after' if a else 'before'} the call" for m, a in KILLS])
def test_a_groups_correction_killed_at_any_step_is_finished_by_the_next_replace(sandbox, tmp_path, method, after):
    """The groups change alone (a PUT), or with a page changed too (the PUT, then an edit session): killed at a call,
    the correction is finished by the next run with --replace (or by any next run, once its edit session was begun),
    leaving one chapter with the new groups and exactly the new pages."""
    from PIL import Image

    manifest_path = _manifest(tmp_path, CH12)
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    ledger = Ledger(tmp_path / "ledger.sqlite")

    def run(client, options: UploadOptions | None = None):
        manifest = load_manifest(manifest_path)
        keys = [manifest.chapter_key(spec, sandbox.api_url) for spec in manifest.chapters]
        plan = build_plan(manifest, check_all(manifest.chapters, tmp_path / "work")[0], sandbox.api_url)
        return ChapterUpload(client, ledger, plan, options, sleep=lambda s: None,
                             pairing=pair_with_published(ledger, keys).get(plan.key)).run()

    chapter_id = run(client).chapter_id
    manifest_path.write_text(manifest_path.read_text().replace(f"groups: [{A}, {B}]", f"groups: [{A}]"))
    pages_too = method != "update_chapter"
    if pages_too:
        page = sorted((tmp_path / "series" / "chapters" / "c002.5").glob("*.png"))[0]
        with Image.open(page) as image:
            Image.new("RGB", image.size, (0, 120, 40)).save(page)
    replace = UploadOptions(replace=True, retry_backoff_s=0)
    with pytest.raises(_Killed):
        run(_KillAt(client, method, 1, after), replace)
    if not pages_too:  # killed at the PUT: without --replace the change is reported again, nothing published twice
        noticed = run(client)
        assert (noticed.status, noticed.chapter_id, noticed.changed) == ("skipped", chapter_id, ["groups"])
    # An edit session begun (after the PUT) is finished by any next run, as any correction's edit is.
    finished = run(client, replace if not pages_too else None)
    assert (finished.status, finished.chapter_id) == ("corrected", chapter_id), finished.error
    assert finished.changed == (["groups", "pages"] if pages_too else ["groups"])
    [chapter] = _chapters(sandbox)
    assert chapter["groups"] == [A] and sandbox.state()["sessions"] == []
    plan = build_plan(load_manifest(manifest_path), check_all(load_manifest(manifest_path).chapters,
                                                                tmp_path / "work")[0], sandbox.api_url)
    assert [(p["originalFileName"], p["fileHash"]) for p in chapter["pages"]] == [
        (p.upload_name, p.sha256) for p in plan.pages]
    assert run(client, replace).status == "skipped"
    ledger.close()


def test_watch_corrects_the_credit_only_when_its_series_file_says_replace(sandbox, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    series_file = tmp_path / "demo.yaml"
    head = f"manga: {MANGA}\nlanguage: en\nmatch: Demo Series\nterms_accepted: true\n"
    series_file.write_text(head + f"groups: [{A}, {B}]\n")
    pages = Path(__file__).parent.parent / "manifests" / "chapters" / "c002.5"
    item = "Demo Series v05 [Demo Scans]"
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    args = ["watch", str(inbox), "--series", str(series_file), "--settle", "0", "--once"]

    def drop_and_watch() -> dict:
        shutil.copytree(pages, inbox / item)
        run = run_cli(args, env)
        assert run.code == 0, run.stderr
        receipts = sorted((inbox / "done").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        return {"stderr": run.stderr, **json.loads(receipts[-1].read_text())}

    first = drop_and_watch()
    assert first["status"] == "uploaded"
    chapter_id = first["chapter_id"]
    series_file.write_text(head + f"groups: [{A}]\n")
    reported = drop_and_watch()  # no `replace: true`: reported, filed under done/, not published again
    assert (reported["status"], reported["chapter_id"], reported["changed"]) == ("skipped", chapter_id, ["groups"])
    assert f"groups {A}+{B} -> {A}" in reported["stderr"] and not (inbox / item).exists()
    assert [sorted(c["groups"]) for c in _chapters(sandbox)] == [[A, B]]
    series_file.write_text(head + f"groups: [{A}]\nreplace: true\n")
    corrected = drop_and_watch()
    assert (corrected["status"], corrected["chapter_id"], corrected["corrected"]) == ("corrected", chapter_id,
                                                                                       ["groups"])
    assert "corrected in place (groups)" in corrected["stderr"]
    assert [c["groups"] for c in _chapters(sandbox)] == [[A]]
