"""`mdupload login`, `logout` and `whoami`, and where every command's credentials come from.

Every test points the store at its own folder (MDUPLOAD_CONFIG_DIR) and either turns the system
keyring off (keyring's fail backend) or hands in a keyring of its own: the user's real keyring and
config folder are never touched.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from click.testing import CliRunner

from mdupload.accounts import store as account_store
from mdupload.accounts.resolve import resolve
from mdupload.accounts.store import AccountStore
from mdupload.cli import main
from mdupload.commands import login as login_command
from mdupload.errors import EXIT_AUTH, EXIT_USAGE, AuthError
from mdupload.sandbox import DEMO_ACCOUNT, Account, SandboxConfig, start_sandbox
from mdupload.settings import config_dir
from tests.e2e import run_cli

pytestmark = pytest.mark.e2e

ALICE = Account("alice", "wonder-land-pass", "alice-client", "alice-client-secret")
CREDENTIAL_VARS = ("MDUPLOAD_USERNAME", "MDUPLOAD_PASSWORD", "MDUPLOAD_CLIENT_ID", "MDUPLOAD_CLIENT_SECRET")


@pytest.fixture(scope="module")
def sandbox():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, users=(ALICE,))) as running:
        yield running


@pytest.fixture(scope="module")
def other_sandbox():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, users=(ALICE,))) as running:
        yield running


def hosts(sandbox) -> dict[str, str]:
    return {"MDUPLOAD_API_URL": sandbox.api_url, "MDUPLOAD_AUTH_URL": sandbox.auth_url}


def credentials(account: Account) -> dict[str, str]:
    return dict(zip(CREDENTIAL_VARS, (account.username, account.password, account.client_id, account.client_secret)))


@pytest.fixture
def env(tmp_path):
    """A clean environment: no MDUPLOAD_* credentials, the store in tmp_path, no system keyring, no CI."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MDUPLOAD_", "GITHUB_"))}
    clean.pop("CI", None)
    clean.update(MDUPLOAD_CONFIG_DIR=str(tmp_path / "config"), MDUPLOAD_LEDGER=str(tmp_path / "ledger.sqlite3"),
                 PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return clean


def cli(args, env, **extra):
    return run_cli(args, {**env, **extra})


def store_file(env) -> dict:
    return json.loads((config_dir(env) / "accounts.json").read_text(encoding="utf-8"))


def login(sandbox, env, account: Account = DEMO_ACCOUNT):
    run = cli(["login", "--json"], env, **hosts(sandbox), **credentials(account))
    assert run.code == 0, run.stderr
    return run


# --- signing in and the file store ------------------------------------------------------------------

def test_login_keeps_the_client_and_refresh_token_in_a_private_file_and_never_the_password(sandbox, env):
    run = login(sandbox, env, ALICE)
    assert run.json["account"] == "alice" and run.json["store"] == "file"
    assert "signed in as alice" in run.stderr and "the password is not stored" in run.stderr
    path = config_dir(env) / "accounts.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (entry,) = store_file(env)["accounts"]
    assert entry["secrets"]["client_id"] == ALICE.client_id
    assert entry["secrets"]["client_secret"] == ALICE.client_secret
    assert entry["secrets"]["refresh_token"].count(".") == 2  # the sandbox's refresh token, a JWT
    assert ALICE.password not in path.read_text(encoding="utf-8")
    assert entry["api_url"] == sandbox.api_url and entry["auth_url"] == sandbox.auth_url


def test_every_command_then_signs_in_with_the_stored_account(sandbox, env):
    login(sandbox, env)
    run = cli(["sessions", "--json"], env, **hosts(sandbox))
    assert run.code == 0, run.stderr
    assert run.json == {"version": 1, "ok": True, "session": None}
    who = cli(["whoami", "--json"], env, **hosts(sandbox))
    assert who.code == 0 and who.json["source"] == "file" and who.json["account"] == "demo"
    assert f"from      {config_dir(env) / 'accounts.json'}" in who.stderr


def test_a_rotated_refresh_token_is_written_back(sandbox, env):
    login(sandbox, env)
    before = store_file(env)["accounts"][0]["secrets"]["refresh_token"]
    assert cli(["sessions"], env, **hosts(sandbox)).code == 0  # a refresh: the sandbox hands out a new token
    after = store_file(env)["accounts"][0]["secrets"]["refresh_token"]
    assert after != before
    assert cli(["whoami", "--check"], env, **hosts(sandbox)).code == 0


def test_without_a_terminal_login_never_prompts_and_names_what_is_missing(sandbox, env):
    run = cli(["login"], env, **hosts(sandbox), MDUPLOAD_USERNAME="demo", MDUPLOAD_CLIENT_ID="mdupload-demo")
    assert run.code == EXIT_AUTH
    assert "MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_SECRET are not set" in run.stderr
    assert "does not prompt here (stdin is not a terminal)" in run.stderr
    assert not (config_dir(env) / "accounts.json").exists()


def test_ci_forbids_prompting_even_on_a_terminal(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    assert login_command._interactive({}) is True
    assert login_command._interactive({"CI": "true"}) is False
    with pytest.raises(AuthError, match=r"MDUPLOAD_PASSWORD is not set, and mdupload does not prompt here \(CI is set\)"):
        login_command._gather("demo", {"CI": "1", "MDUPLOAD_CLIENT_ID": "c", "MDUPLOAD_CLIENT_SECRET": "s"})


def test_in_a_terminal_login_asks_for_what_is_missing_with_hidden_secrets(sandbox, env, monkeypatch):
    monkeypatch.setattr(login_command, "_interactive", lambda environ: True)
    prompts = []
    real_prompt = login_command.click.prompt

    def recording_prompt(text, **kwargs):
        prompts.append((text, kwargs.get("hide_input", False)))
        return real_prompt(text, **kwargs)

    monkeypatch.setattr(login_command.click, "prompt", recording_prompt)
    result = CliRunner().invoke(main, ["login"], input=f"demo\n{DEMO_ACCOUNT.password}\nmdupload-demo\n"
                                                      f"{DEMO_ACCOUNT.client_secret}\n",
                                env={**env, **hosts(sandbox)})
    assert result.exit_code == 0, result.output
    assert prompts == [("MangaDex username", False), ("Password", True), ("Personal API client id", False),
                       ("Personal API client secret", True)]
    assert store_file(env)["accounts"][0]["username"] == "demo"


def test_a_refused_password_stores_nothing(sandbox, env):
    run = cli(["login"], env, **hosts(sandbox), **{**credentials(DEMO_ACCOUNT), "MDUPLOAD_PASSWORD": "not-it"})
    assert run.code == EXIT_AUTH
    assert "MangaDex refused to sign in as demo" in run.stderr and "Check the username and password" in run.stderr
    assert not (config_dir(env) / "accounts.json").exists()


def test_an_expired_refresh_token_asks_to_log_in_again_once(env):
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, refresh_lifetime=1.0)) as short:
        login(short, env)
        time.sleep(1.5)
        run = cli(["sessions"], env, **hosts(short))
    assert run.code == EXIT_AUTH
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: MangaDex no longer accepts the stored sign-in of demo")
    assert "expired or was revoked (Token is not active" in lines[0]
    assert f"Run `mdupload login --api-url {short.api_url} --auth-url {short.auth_url}` again." in lines[0]


def test_a_revoked_refresh_token_asks_to_log_in_again(env, tmp_path):
    first = start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0))
    port = int(first.api_url.rsplit(":", 1)[1])
    login(first, env)
    first.stop()
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, port=port)) as again:  # it knows no token of before
        assert again.api_url == first.api_url
        run = cli(["sessions"], env, **hosts(again))
    assert run.code == EXIT_AUTH, run.stderr
    assert "no longer accepts the stored sign-in of demo" in run.stderr and "mdupload login" in run.stderr


# --- refusing an unsafe store ---------------------------------------------------------------------------

def test_a_store_readable_by_others_is_refused_with_the_fix(sandbox, env):
    login(sandbox, env)
    path = config_dir(env) / "accounts.json"
    path.chmod(0o644)
    for args in (["whoami"], ["sessions"], ["login"]):
        run = cli(args, env, **hosts(sandbox), **(credentials(DEMO_ACCOUNT) if args == ["login"] else {}))
        assert run.code == EXIT_AUTH, run.stderr
        assert f"{path} can be read or changed by other users (mode 0644)" in run.stderr
        assert f"chmod 600 {path}" in run.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # refused, not silently repaired


def test_a_store_that_is_a_link_or_someone_elses_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    folder.mkdir()
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text('{"format": 1, "accounts": []}')
    elsewhere.chmod(0o600)
    (folder / "accounts.json").symlink_to(elsewhere)
    with pytest.raises(AuthError, match="is a symbolic link"):
        AccountStore(folder).accounts()
    (folder / "accounts.json").unlink()
    (folder / "accounts.json").write_text('{"format": 1, "accounts": []}')
    (folder / "accounts.json").chmod(0o600)
    monkeypatch.setattr(account_store.os, "geteuid", lambda: os.stat(folder / "accounts.json").st_uid + 1)
    with pytest.raises(AuthError, match="belongs to another user"):
        AccountStore(folder).accounts()


@pytest.mark.parametrize("content, words", [
    (b"not json at all", "it is not JSON"),
    (b'{"format": 99, "accounts": []}', "not an accounts file of this version"),
    (b'{"format": 1, "accounts": [{"api_url": "x"}]}', "unexpected fields"),
    ((b'{"format": 1, "accounts": [{"api_url": "x", "auth_url": "y", "username": "u", "store": "file", '
      b'"logged_in_at": 1}]}'), "the entry of 'u' is malformed"),
])
def test_a_damaged_store_is_a_clear_error(tmp_path, content, words):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "accounts.json").write_bytes(content)
    (folder / "accounts.json").chmod(0o600)
    with pytest.raises(AuthError, match=words) as caught:
        AccountStore(folder).accounts()
    assert "mdupload login" in str(caught.value) and caught.value.exit_code == EXIT_AUTH


# --- several accounts and environments --------------------------------------------------------------------

def test_accounts_and_environments_live_side_by_side(sandbox, other_sandbox, env):
    login(sandbox, env, DEMO_ACCOUNT)
    login(sandbox, env, ALICE)
    login(other_sandbox, env, DEMO_ACCOUNT)
    listed = cli(["whoami", "--all", "--json"], env).json["accounts"]
    assert sorted((a["api_url"], a["account"]) for a in listed) == sorted([
        (sandbox.api_url, "demo"), (sandbox.api_url, "alice"), (other_sandbox.api_url, "demo")])
    assert cli(["whoami", "--json"], env, **hosts(sandbox)).json["account"] == "alice"  # signed in last
    assert cli(["whoami", "--json"], env, **hosts(sandbox), MDUPLOAD_ACCOUNT="demo").json["account"] == "demo"
    assert cli(["whoami", "--json", "--account", "demo"], env, **hosts(sandbox)).json["account"] == "demo"
    assert cli(["whoami", "--json"], env, **hosts(other_sandbox)).json["account"] == "demo"
    assert cli(["sessions"], env, **hosts(sandbox), MDUPLOAD_ACCOUNT="demo").code == 0
    missing = cli(["whoami", "--account", "bob"], env, **hosts(sandbox))
    assert missing.code == EXIT_AUTH and "No account 'bob' is stored" in missing.stderr
    assert "stored there: alice, demo" in missing.stderr

    gone = cli(["logout", "--json", "--account", "alice"], env, **hosts(sandbox))
    assert gone.code == 0 and gone.json["removed"] == [{"account": "alice", "api_url": sandbox.api_url,
                                                         "store": "file"}]
    assert cli(["whoami", "--json"], env, **hosts(sandbox)).json["account"] == "demo"
    assert cli(["logout", "--account", "bob"], env, **hosts(sandbox)).code == EXIT_USAGE
    assert cli(["logout", "--all"], env).code == 0
    assert store_file(env)["accounts"] == []
    nobody = cli(["sessions"], env, **hosts(sandbox))
    assert nobody.code == EXIT_AUTH and f"Not signed in to {sandbox.api_url}" in nobody.stderr
    assert "mdupload login --api-url" in nobody.stderr


def test_the_environment_always_wins_over_a_stored_account(sandbox, env):
    login(sandbox, env, ALICE)
    who = cli(["whoami", "--json"], env, **hosts(sandbox), **credentials(DEMO_ACCOUNT))
    assert who.json["source"] == "environment" and who.json["account"] == "demo"
    partial = cli(["sessions"], env, **hosts(sandbox), MDUPLOAD_USERNAME="demo")
    assert partial.code == EXIT_AUTH
    assert "Only some MangaDex credentials are set in the environment (MDUPLOAD_USERNAME)" in partial.stderr
    assert "unset them all to use the stored account" in partial.stderr


def test_a_stored_account_signs_in_only_at_the_token_url_that_issued_it(sandbox, other_sandbox, env):
    login(sandbox, env)
    stored = resolve(environ={**env, "MDUPLOAD_API_URL": sandbox.api_url})  # no token URL given: the stored one
    assert stored.hosts.auth_url == sandbox.auth_url
    with pytest.raises(AuthError, match="signs in at .* but this command was told to use"):
        resolve(environ={**env, "MDUPLOAD_API_URL": sandbox.api_url, "MDUPLOAD_AUTH_URL": other_sandbox.auth_url})


# --- the system keyring ------------------------------------------------------------------------------

class MemoryKeyring:
    """A keyring backend of the test's own (priority as a real system keyring's)."""

    priority = 5
    name = "test keyring"

    def __init__(self, fail_on_set: bool = False):
        self.items: dict[tuple[str, str], str] = {}
        self.fail_on_set = fail_on_set

    def set_password(self, service, user, value):
        if self.fail_on_set:
            raise RuntimeError("the keyring is locked")
        self.items[(service, user)] = value

    def get_password(self, service, user):
        return self.items.get((service, user))

    def delete_password(self, service, user):
        self.items.pop((service, user))


def invoke(args, env, keyring):
    original = account_store._LazyKeyring.backend
    account_store._LazyKeyring.backend = lambda self: keyring
    try:
        return CliRunner().invoke(main, args, env=env)
    finally:
        account_store._LazyKeyring.backend = original


def test_with_a_system_keyring_the_secrets_go_there_and_the_file_lists_the_account_only(sandbox, env):
    keyring = MemoryKeyring()
    everything = {**env, **hosts(sandbox), **credentials(DEMO_ACCOUNT)}
    result = invoke(["login", "--json"], everything, keyring)
    assert result.exit_code == 0, result.output
    assert "in the system keyring (test keyring)" in result.output
    assert sorted(user.rsplit(" ", 1)[1] for _service, user in keyring.items) == [
        "client_id", "client_secret", "refresh_token"]
    text = (config_dir(env) / "accounts.json").read_text(encoding="utf-8")
    assert DEMO_ACCOUNT.client_secret not in text and "refresh_token" not in text
    assert json.loads(text)["accounts"][0]["store"] == "keyring"
    before = dict(keyring.items)
    result = invoke(["sessions"], {**env, **hosts(sandbox)}, keyring)
    assert result.exit_code == 0, result.output
    rotated = [user for user in keyring.items if keyring.items[user] != before[user]]
    assert [user[1].rsplit(" ", 1)[1] for user in rotated] == ["refresh_token"]
    result = invoke(["whoami"], {**env, **hosts(sandbox)}, keyring)
    assert "from      the system keyring (test keyring)" in result.output
    assert invoke(["logout"], {**env, **hosts(sandbox)}, keyring).exit_code == 0
    assert keyring.items == {}


class RefusingToDeleteKeyring(MemoryKeyring):
    """A keyring that keeps the refresh token when asked to delete it (a locked or read-only one)."""

    def delete_password(self, service, user):
        if user.endswith(" refresh_token"):
            raise RuntimeError("the keyring is locked")
        super().delete_password(service, user)


def test_logout_says_what_the_keyring_refused_to_remove_and_how_to_remove_it(sandbox, env):
    keyring = RefusingToDeleteKeyring()
    assert invoke(["login"], {**env, **hosts(sandbox), **credentials(DEMO_ACCOUNT)}, keyring).exit_code == 0
    result = invoke(["logout", "--json"], {**env, **hosts(sandbox)}, keyring)
    assert result.exit_code == 1, result.output
    [(_service, left)] = keyring.items
    assert left.endswith(" refresh_token")
    assert "removed its client id and client secret from the system keyring" in result.stderr
    assert "removed its client id, client secret and refresh token" not in result.stderr
    assert (f"error: could not remove the refresh token of {DEMO_ACCOUNT.username}" in result.stderr
            and "the keyring is locked" in result.stderr and f"keyring del mdupload '{left}'" in result.stderr)
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["removed"][0]["left_behind"] == [{"secret": "refresh_token", "keyring_service": "mdupload",
                                                      "keyring_user": left, "why": document["removed"][0][
                                                          "left_behind"][0]["why"]}]


def test_a_keyring_that_refuses_falls_back_to_the_private_file_and_says_why(sandbox, env):
    result = invoke(["login"], {**env, **hosts(sandbox), **credentials(DEMO_ACCOUNT)}, MemoryKeyring(fail_on_set=True))
    assert result.exit_code == 0, result.output
    assert "not in the system keyring: the system keyring refused it (the keyring is locked)" in result.output
    assert store_file(env)["accounts"][0]["store"] == "file"


def test_mdupload_keyring_0_keeps_the_keyring_out_of_it(sandbox, env):
    keyring = MemoryKeyring()
    result = invoke(["login"], {**env, **hosts(sandbox), **credentials(DEMO_ACCOUNT), "MDUPLOAD_KEYRING": "0"},
                    keyring)
    assert result.exit_code == 0 and keyring.items == {}
    assert "MDUPLOAD_KEYRING=0 turns the system keyring off" in result.output


def test_credentials_missing_from_the_keyring_ask_to_log_in_again(sandbox, env):
    keyring = MemoryKeyring()
    assert invoke(["login"], {**env, **hosts(sandbox), **credentials(DEMO_ACCOUNT)}, keyring).exit_code == 0
    keyring.items.clear()  # e.g. the user reset the keyring
    result = invoke(["sessions"], {**env, **hosts(sandbox)}, keyring)
    assert result.exit_code == EXIT_AUTH
    assert "client_id, client_secret, refresh_token missing from the system keyring" in result.output
    assert "mdupload login" in result.output


def test_the_config_folder_comes_from_mdupload_config_dir(tmp_path):
    assert config_dir({"MDUPLOAD_CONFIG_DIR": str(tmp_path)}) == tmp_path
    assert config_dir({}) != tmp_path
