"""The stored accounts: what `mdupload login` keeps (commands/login.py, logout.py, whoami.py use this store).

`mdupload login` signs in with the password grant and keeps only what signing in again without the
password needs: the personal client's id and secret and the refresh token. They go to

- the system keyring (`keyring`: macOS Keychain, Windows Credential Locker, Secret Service or
  KWallet) when a usable one exists: service `mdupload`, one item per value;
- otherwise `accounts.json` in the config folder, readable by the user alone (mode 0600). A wider
  mode, another owner or a symbolic link in its place is refused, never repaired silently.

`accounts.json` (same rules) always lists the stored accounts: API URL, token URL, username, where
the secrets are, when the account signed in and when its refresh token expires. Accounts are keyed
by API URL and username, so production, dev and any sandbox live side by side.

Settings: MDUPLOAD_CONFIG_DIR (the config folder), MDUPLOAD_KEYRING=0 (never use the keyring) and
keyring's own PYTHON_KEYRING_BACKEND.
"""


from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from ..errors import AuthError
from ..files import O_NOFOLLOW, write_replacing
from ..redact import redact
from ..settings import (
    ACCOUNT,
    CONFIG_DIR,
    DEV_API,
    DEV_AUTH,
    KEYRING,
    PRODUCTION_API,
    PRODUCTION_AUTH,
    config_dir,
    keyring_wanted,
)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent logins there may lose one update
    fcntl = None

log = logging.getLogger("mdupload.accounts")

INDEX_NAME = "accounts.json"
LOCK_NAME = "accounts.lock"
FORMAT = 1
MAX_INDEX_BYTES = 1024 * 1024
KEYRING_SERVICE = "mdupload"
SECRET_FIELDS = ("client_id", "client_secret", "refresh_token")
ACCOUNT_ENV = ACCOUNT.variable
CONFIG_ENV = CONFIG_DIR.variable
KEYRING_ENV = KEYRING.variable


# --- the stored accounts ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredAccount:
    api_url: str
    auth_url: str
    username: str
    store: str  # "keyring" or "file": where the client id, client secret and refresh token are
    logged_in_at: float
    refresh_expires_at: float | None = None  # as MangaDex said at the last refresh; None: never
    keyring_backend: str | None = None  # the keyring's name, for whoami
    secrets: dict | None = field(default=None, repr=False)  # the values themselves, "file" only

    @property
    def key(self) -> tuple[str, str]:
        return self.api_url, self.username


class AccountStore:
    """accounts.json in `folder`, and the keyring (`keyring` is a keyring backend, or None for none)."""

    def __init__(self, folder: Path, keyring=None):
        self.folder = Path(folder)
        self.path = self.folder / INDEX_NAME
        self.keyring = keyring

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AccountStore:
        return cls(config_dir(environ), _LazyKeyring() if keyring_wanted(environ) else None)

    # --- reading --------------------------------------------------------------------------------

    def accounts(self) -> list[StoredAccount]:
        """Every stored account, the one that signed in last first."""
        return sorted(self._read(), key=lambda a: a.logged_in_at, reverse=True)

    def for_api(self, api_url: str) -> list[StoredAccount]:
        return [a for a in self.accounts() if a.api_url == api_url]

    def select(self, api_url: str, name: str | None = None) -> StoredAccount | None:
        """The account `name` of this API (an error when it is not stored), else the last signed in."""
        candidates = self.for_api(api_url)
        if name is None:
            return candidates[0] if candidates else None
        for account in candidates:
            if account.username == name:
                return account
        stored = ", ".join(a.username for a in candidates) or "none"
        raise AuthError(f"No account {name!r} is stored for {api_url} (stored there: {stored}).",
                        hint=f"Run `{login_line(api_url, None, username=name)}`, or pick a stored one with "
                             f"--account or {ACCOUNT_ENV}.")

    def secrets_of(self, account: StoredAccount) -> tuple[str, str, str]:
        """(client id, client secret, refresh token) of a stored account."""
        again = f"Run `{login_line(account.api_url, account.auth_url, username=account.username)}` again."
        if account.store == "file":
            values = account.secrets or {}
        else:
            backend = self._keyring(required_for=account)
            try:
                values = {name: backend.get_password(KEYRING_SERVICE, _keyring_key(account, name))
                          for name in SECRET_FIELDS}
            except Exception as exc:  # noqa: BLE001 - every keyring backend raises its own errors
                raise AuthError(f"The system keyring refused to hand out the credentials of {account.username} "
                                f"for {account.api_url}: {redact(str(exc)) or type(exc).__name__}.",
                                hint="Unlock the keyring, or " + again[0].lower() + again[1:]) from None
        missing = [name for name in SECRET_FIELDS if not isinstance(values.get(name), str) or not values[name]]
        if missing:
            where = "the system keyring" if account.store == "keyring" else str(self.path)
            raise AuthError(f"The stored credentials of {account.username} for {account.api_url} are incomplete: "
                            f"{', '.join(missing)} missing from {where}.", hint=again)
        return values["client_id"], values["client_secret"], values["refresh_token"]

    def describe(self, account: StoredAccount) -> str:
        if account.store == "keyring":
            return f"the system keyring ({account.keyring_backend})" if account.keyring_backend else "the system keyring"
        return f"{self.path} (readable by you alone)"

    # --- writing --------------------------------------------------------------------------------

    def save_login(self, *, api_url: str, auth_url: str, username: str, client_id: str, client_secret: str,
                   refresh_token: str, refresh_expires_at: float | None) -> tuple[StoredAccount, str | None]:
        """Store a fresh sign-in (replacing the same account's); the account, and why the keyring was not used."""
        values = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
        with self._locked():
            accounts = self._read()
            old = next((a for a in accounts if a.key == (api_url, username)), None)
            account = StoredAccount(api_url, auth_url, username, "file", datetime.now(UTC).timestamp(),
                                    refresh_expires_at)
            backend, why_not = self._usable_keyring()
            if backend is not None:
                try:
                    for name, value in values.items():
                        backend.set_password(KEYRING_SERVICE, _keyring_key(account, name), value)
                    account = replace(account, store="keyring", keyring_backend=_backend_name(backend))
                except Exception as exc:  # noqa: BLE001
                    why_not = f"the system keyring refused it ({redact(str(exc)) or type(exc).__name__})"
                    self._forget_keyring_items(backend, account)
            if account.store == "file":
                account = replace(account, secrets=values)
            self._write([a for a in accounts if a.key != account.key] + [account])
        if old is not None and old.store == "keyring" and account.store != "keyring":
            self._forget_keyring_items(self._keyring_or_none(), old)
        return account, why_not

    def keep_refresh_token(self, account: StoredAccount, token: str, expires_at: float | None) -> None:
        """A refresh made a new refresh token: keep it instead of the old one (nothing if logged out since)."""
        with self._locked():
            accounts = self._read()
            current = next((a for a in accounts if a.key == account.key), None)
            if current is None:
                return
            if current.store == "keyring":
                backend = self._keyring(required_for=current)
                backend.set_password(KEYRING_SERVICE, _keyring_key(current, "refresh_token"), token)
                updated = replace(current, refresh_expires_at=expires_at)
            else:
                updated = replace(current, refresh_expires_at=expires_at,
                                  secrets={**(current.secrets or {}), "refresh_token": token})
            self._write([updated if a.key == account.key else a for a in accounts])

    def remove(self, account: StoredAccount) -> list[LeftBehind]:
        """Remove the account; what could not be removed from the keyring (nothing, normally)."""
        with self._locked():
            self._write([a for a in self._read() if a.key != account.key])
        if account.store != "keyring":
            return []
        backend, why_not = self._usable_keyring()
        if backend is None:
            return [LeftBehind(name, _keyring_key(account, name), f"the system keyring cannot be used now: {why_not}")
                    for name in SECRET_FIELDS]
        return self._forget_keyring_items(backend, account)

    # --- the keyring ----------------------------------------------------------------------------

    def _usable_keyring(self):
        """(backend, None), or (None, why the keyring is not used)."""
        if self.keyring is None:
            return None, f"{KEYRING_ENV}=0 turns the system keyring off"
        backend = self.keyring.backend() if isinstance(self.keyring, _LazyKeyring) else self.keyring
        if backend is None:
            return None, "no usable system keyring was found"
        return backend, None

    def _keyring(self, *, required_for: StoredAccount):
        backend, why_not = self._usable_keyring()
        if backend is None:
            raise AuthError(f"The credentials of {required_for.username} for {required_for.api_url} are in the "
                            f"system keyring, which cannot be used now: {why_not}.",
                            hint=f"Run `{login_line(required_for.api_url, required_for.auth_url)}` again, or "
                                 "set the MDUPLOAD_* credentials in the environment.")
        return backend

    def _keyring_or_none(self):
        return self._usable_keyring()[0]

    @staticmethod
    def _forget_keyring_items(backend, account: StoredAccount) -> list[LeftBehind]:
        """Delete the account's items from the keyring; those still there after (a keyring that refused)."""
        left = []
        for name in SECRET_FIELDS:
            key = _keyring_key(account, name)
            try:
                backend.delete_password(KEYRING_SERVICE, key)
                continue
            except Exception as exc:  # noqa: BLE001 - already gone (fine), or a keyring that refused: asked below
                refusal = redact(str(exc)) or type(exc).__name__
            try:
                still_there = backend.get_password(KEYRING_SERVICE, key) is not None
            except Exception:  # noqa: BLE001 - cannot even tell: say so
                still_there = True
            if still_there:
                left.append(LeftBehind(name, key, f"the system keyring refused to delete it ({refusal})"))
        return left

    # --- the file -------------------------------------------------------------------------------

    def _read(self) -> list[StoredAccount]:
        try:
            fd = os.open(self.path, os.O_RDONLY | O_NOFOLLOW)
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._unsafe("is a symbolic link") from None
            raise AuthError(f"{self.path} cannot be read ({exc.strerror or exc}).",
                            hint=f"Check the folder's permissions, or point {CONFIG_ENV} elsewhere.") from None
        with os.fdopen(fd, "rb") as file:
            self._check_private(os.fstat(file.fileno()))
            raw = file.read(MAX_INDEX_BYTES + 1)
        if len(raw) > MAX_INDEX_BYTES:
            raise self._corrupt("it is far too large")
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._corrupt("it is not JSON") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(
                document.get("accounts"), list):
            raise self._corrupt(f"it is not an accounts file of this version (format {FORMAT})")
        return [self._parse(entry) for entry in document["accounts"]]

    def _parse(self, entry) -> StoredAccount:
        try:
            account = StoredAccount(**entry)
        except TypeError:
            raise self._corrupt("an entry has unexpected fields") from None
        texts = (account.api_url, account.auth_url, account.username)
        if (not all(isinstance(t, str) and t for t in texts) or account.store not in ("keyring", "file")
                or not isinstance(account.logged_in_at, (int, float))
                or not (account.refresh_expires_at is None or isinstance(account.refresh_expires_at, (int, float)))
                or (account.store == "file") != isinstance(account.secrets, dict)):
            raise self._corrupt(f"the entry of {account.username!r} is malformed")
        return account

    def _check_private(self, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise self._unsafe("is not a regular file")
        if os.name != "posix":
            return  # Windows: the file inherits the user profile's access rules
        if info.st_uid != os.geteuid():
            raise self._unsafe(f"belongs to another user (uid {info.st_uid})")
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise AuthError(
                f"{self.path} can be read or changed by other users (mode {mode:04o}); mdupload keeps credentials "
                "only in a file readable by you alone, so it refuses to use it.",
                hint=f"Run `chmod 600 {self.path}`. If others may have read it, create a new client secret on "
                     "mangadex.org (Settings > API Clients) and run `mdupload login` again.")

    def _unsafe(self, what: str) -> AuthError:
        return AuthError(f"{self.path} {what}; mdupload keeps credentials only in a regular file of your own "
                         "(mode 0600), so it refuses to use it.",
                         hint=f"Remove it and run `mdupload login` again, or point {CONFIG_ENV} at another folder.")

    def _corrupt(self, why: str) -> AuthError:
        return AuthError(f"{self.path} cannot be used: {why}.",
                         hint="Remove it (run `mdupload logout --all`, or delete the file) and run `mdupload login` "
                              "again.")

    def _write(self, accounts: list[StoredAccount]) -> None:
        document = {"format": FORMAT, "accounts": [asdict(a) for a in accounts]}
        data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
        try:
            write_replacing(self.path, data, mode=0o600, durable=True)
        except OSError as exc:
            raise AuthError(f"Cannot write {self.path} ({exc.strerror or exc}).",
                            hint=f"Check the folder's permissions, or point {CONFIG_ENV} at a folder you may "
                                 "write.") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's lock (one writer at a time, across processes)."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise AuthError(f"Cannot use the config folder {self.folder} ({exc.strerror or exc}).",
                            hint=f"Check its permissions, or point {CONFIG_ENV} at a folder you may write.") from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


class _LazyKeyring:
    """The system keyring, looked for only when first needed (the lookup may talk to D-Bus)."""

    def backend(self):
        try:
            import keyring
            from keyring.backends import fail

            backend = keyring.get_keyring()
        except Exception:  # noqa: BLE001 - a broken keyring setup means: no keyring
            return None
        # Priority below 1: the fail backend, or a plaintext file of keyrings.alt (no better than ours).
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) < 1:
            return None
        return backend


@dataclass(frozen=True)
class LeftBehind:
    """A secret `logout` could not remove from the keyring: its field, its keyring entry, and why."""

    secret: str  # client_id, client_secret or refresh_token
    key: str  # the entry's user name under the service KEYRING_SERVICE
    why: str


def _keyring_key(account: StoredAccount, name: str) -> str:
    return f"{account.api_url} {account.username} {name}"


def _backend_name(backend) -> str:
    return getattr(backend, "name", None) or type(backend).__name__


def login_line(api_url: str, auth_url: str | None, *, username: str | None = None) -> str:
    """The `mdupload login` command line that signs in to this API again."""
    if api_url == PRODUCTION_API and auth_url in (None, PRODUCTION_AUTH):
        command = "mdupload login"
    elif api_url == DEV_API and auth_url in (None, DEV_AUTH):
        command = "mdupload login --dev"
    else:
        command = f"mdupload login --api-url {api_url}" + (f" --auth-url {auth_url}" if auth_url else "")
    return command + (f" --username {username}" if username else "")
