"""One settings object per run (mdupload/settings.py): options, else MDUPLOAD_* variables, else defaults."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mdupload.settings import (
    SETTINGS,
    Environment,
    Settings,
    config_dir,
    keyring_wanted,
    settings_table,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mdupload"
# The command layer reads the process's environment (into settings.Environment); the sandbox is a program
# of its own, with its own settings.
COMMAND_LAYER = ("commands/", "sandbox/", "cli.py", "settings.py", "demo.py", "__main__.py")


def test_an_option_wins_over_its_variable_which_wins_over_the_default(tmp_path):
    environment = Environment({"MDUPLOAD_LEDGER": str(tmp_path / "env.sqlite3"), "MDUPLOAD_ACCEPT_TERMS": "yes",
                               "MDUPLOAD_CACHE_DIR": str(tmp_path / "cache")})
    from_variables = Settings.build(environment)
    assert from_variables.ledger == tmp_path / "env.sqlite3"
    assert from_variables.accept_terms is True
    assert from_variables.fix_cache == tmp_path / "cache" / "fixes"
    from_option = Settings.build(environment, ledger=tmp_path / "option.sqlite3")
    assert from_option.ledger == tmp_path / "option.sqlite3"
    defaults = Settings.build(Environment({}))
    assert defaults.ledger.name == "ledger.sqlite3" and defaults.ledger.parent != tmp_path
    assert defaults.accept_terms is False
    assert Settings.build(Environment({"MDUPLOAD_ACCEPT_TERMS": "maybe"})).accept_terms is False


def test_the_environment_is_the_object_given_never_the_process_s(monkeypatch, tmp_path):
    monkeypatch.setenv("MDUPLOAD_LEDGER", str(tmp_path / "process.sqlite3"))
    monkeypatch.setenv("MDUPLOAD_CONFIG_DIR", str(tmp_path / "process-config"))
    settings = Settings.build(Environment({}))
    assert settings.ledger != tmp_path / "process.sqlite3"
    assert config_dir(settings.environ) != tmp_path / "process-config"
    assert config_dir({"MDUPLOAD_CONFIG_DIR": "~/mdupload-config"}) == Path.home() / "mdupload-config"


def test_the_keyring_is_used_unless_turned_off():
    assert keyring_wanted({}) is True
    assert all(keyring_wanted({"MDUPLOAD_KEYRING": value}) is False for value in ("0", "no", "FALSE", " off "))


def reads_os_environ(path: Path) -> list[int]:
    """Lines of `path` that touch os.environ or os.getenv (as attributes, or imported from os)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        attribute = (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                     and isinstance(node.value, ast.Name) and node.value.id == "os")
        imported = (isinstance(node, ast.ImportFrom) and node.module == "os"
                    and any(alias.name in ("environ", "getenv") for alias in node.names))
        if attribute or imported:
            lines.append(node.lineno)
    return lines


def test_no_module_below_the_command_layer_reads_os_environ():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             if not str(path.relative_to(PACKAGE)).startswith(COMMAND_LAYER) for line in reads_os_environ(path)]
    assert found == []
    assert reads_os_environ(PACKAGE / "settings.py"), "the scan does not see os.environ where it is read"


def test_every_mdupload_variable_in_the_code_is_a_setting():
    used = set()
    for path in PACKAGE.rglob("*.py"):
        if not str(path.relative_to(PACKAGE)).startswith("sandbox/"):
            used |= set(re.findall(r"\bMDUPLOAD_[A-Z_]*[A-Z]\b", path.read_text(encoding="utf-8")))
    assert used, "the scan found no variable at all"
    assert used <= {s.variable for s in SETTINGS}, sorted(used - {s.variable for s in SETTINGS})


def test_the_settings_table_has_one_row_per_setting():
    table = settings_table()
    for setting in SETTINGS:
        assert f"`{setting.variable}`" in table
    assert len({s.name for s in SETTINGS}) == len({s.variable for s in SETTINGS}) == len(SETTINGS)
    documented = ROOT / "docs" / "configuration.md"
    if documented.exists():  # the guide carries the table as settings_table() renders it
        assert settings_table() in documented.read_text(encoding="utf-8")
