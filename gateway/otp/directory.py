"""Who a user is and how to reach them: ``FileDirectory`` (the demo's) and ``HttpDirectory``.

Values are validated alike: a bad file refuses to load, listing every problem; a bad phone or
e-mail from a CRM is absent, logged without its value (one bad record must not cut the user off
the other channel). httpx errors become ``DirectoryError`` in one place, ``HttpDirectory.lookup``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeGuard
from urllib.parse import quote, urlsplit

import httpx

from gateway.errors import ConfigError, DirectoryError
from gateway.otp.model import CHANNELS, LANGUAGES, Contact, Directory
from gateway.yamlio import TextLoader, parse_yaml

log = logging.getLogger("gateway.directory")

FIELDS: Final = ("phone", "email", "channel", "language")
CSV_COLUMNS: Final = ("user_id", *FIELDS)

# Message formats: where, what was expected, what was found. FILE is the path as configured.
_USER, _BUT = "{file}: user '{user}': ", " but it's configured as '{found}'"
FMT_OPTION: Final = _USER + "option '{option}' must be {expected}" + _BUT
FMT_UNKNOWN: Final = _USER + "option '{option}' is not a known option (known: {known})"
FMT_ENTRY: Final = _USER + "the entry must be {expected}" + _BUT
FMT_DUPLICATE: Final = _USER + "the user must be listed once, but line {line} repeats it"
FMT_USER_ID: Final = "{file}: a user id must be {expected}" + _BUT
FMT_FILE: Final = "{file}: the file must be {expected}" + _BUT
FMT_COLUMN: Final = "{file}: column '{column}' is not a known column (known: {known})"
FMT_ROW: Final = "{file}: line {line}: the row must have at most {count} fields but it has more"
FMT_SUFFIX: Final = "{file}: the directory file must end in .yaml, .yml or .csv"
FMT_UNREADABLE: Final = "{file}: the file cannot be read: {problem}"
FMT_HTTP: Final = "{file}: option '{option}' must be {expected}" + _BUT

EXPECT: Final[dict[str, str]] = {
    "phone": "an E.164 number like +4915112345678",
    "email": "an e-mail address like name@example.com",
    "channel": "one of " + ", ".join(f"'{c}'" for c in CHANNELS),
    "language": "one of " + ", ".join(f"'{lang}'" for lang in LANGUAGES),
}
EXPECT_USER_ID: Final = "1 to 255 visible ASCII characters (no spaces)"
EXPECT_ENTRY: Final = "a mapping of options (phone, email, channel, language)"
EXPECT_YAML_FILE: Final = "a mapping of user ids to their contact options"
EXPECT_CSV_HEADER: Final = "a header with 'user_id' and some of phone, email, channel, language"
EXPECT_URL: Final = "an http(s) URL with '{user_id}' once in its path or query"
EXPECT_AUTH: Final = "set together with 'auth_value' (a header name and its secret value)"
EXPECT_FIELD_MAP: Final = "a mapping from phone, email, channel, language to JSON member names"

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# A deliberately plain address: dot-atoms, ASCII only. Nothing that could end a mail header
# (CR, LF) or smuggle in a second recipient (",", ";", "<") gets through.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
_PATTERNS: Final = {"phone": _E164, "email": _EMAIL}
_USER_ID = re.compile(r"[!-~]{1,255}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROBE: Final = "user-id-probe"


def is_valid_user_id(user_id: object) -> TypeGuard[str]:
    """CONTRACT §2: 1–255 characters of visible ASCII, because a user id travels in a header."""
    return isinstance(user_id, str) and _USER_ID.fullmatch(user_id) is not None


def is_valid(value: object, option: str) -> TypeGuard[str]:
    """Whether ``value`` is acceptable for contact ``option`` (phone, email, channel, language)."""
    if not isinstance(value, str):
        return False
    if option in _PATTERNS:
        return len(value) <= 254 and _PATTERNS[option].fullmatch(value) is not None
    return value in {"channel": CHANNELS, "language": LANGUAGES}.get(option, ())


def _found(value: object) -> str:
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], "null" if value is None else str(value))
    return text if len(text) <= 80 else text[:77] + "..."


class _Problems(list[str]):
    """Every problem found in one file, each formatted from an FMT_* constant."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def add(self, fmt: str, found: object = None, **parts: object) -> None:
        self.append(fmt.format(file=self.file, found=_found(found), **parts))


class FileDirectory:
    """A YAML mapping (``ID: {phone, email, channel, language}``) or a CSV file with the header
    ``user_id,phone,email,channel,language``, chosen by the extension. Empty or missing values
    mean "absent". Read once, at construction; every problem is raised in one ConfigError."""

    def __init__(self, path: str | Path) -> None:
        self.path, problems = Path(path), _Problems(str(path))
        suffix = self.path.suffix.lower()
        if suffix not in (".yaml", ".yml", ".csv"):
            problems.add(FMT_SUFFIX)
            raise ConfigError(problems)
        try:
            text = self.path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM.
        except (OSError, UnicodeDecodeError) as error:
            problems.add(FMT_UNREADABLE, problem=error)
            raise ConfigError(problems) from None
        contacts = (_read_csv if suffix == ".csv" else _read_yaml)(text, problems)
        if problems:
            raise ConfigError(problems)
        self._contacts = {contact.user_id: contact for contact in contacts}

    async def lookup(self, user_id: str) -> Contact | None:
        return self._contacts.get(user_id)

    async def aclose(self) -> None:
        """Nothing to release; here so that every directory closes the same way."""


def _read_yaml(text: str, problems: _Problems) -> list[Contact]:
    data, errors = parse_yaml(text, problems.file, TextLoader)
    if errors:
        problems.extend(errors)
        return []
    if not isinstance(data, dict):
        if data is not None:  # An empty file is an empty directory.
            problems.add(FMT_FILE, data, expected=EXPECT_YAML_FILE)
        return []
    entries: list[Contact] = []
    for user, options in data.items():
        if not is_valid_user_id(user):
            problems.add(FMT_USER_ID, user, expected=EXPECT_USER_ID)
        elif options is not None and not isinstance(options, dict):
            problems.add(FMT_ENTRY, options, user=user, expected=EXPECT_ENTRY)
        else:
            entries.append(_validated(user, options or {}, problems))
    return entries


def _read_csv(text: str, problems: _Problems) -> list[Contact]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames = [column.strip() for column in reader.fieldnames or []]
    if "user_id" not in header:
        problems.add(FMT_FILE, ",".join(header), expected=EXPECT_CSV_HEADER)
        return []
    for column in (column for column in header if column not in CSV_COLUMNS):
        problems.add(FMT_COLUMN, column=column, known=", ".join(CSV_COLUMNS))
    entries: list[Contact] = []
    seen: set[str] = set()
    for row in reader:
        user, line = (row.pop("user_id") or "").strip(), reader.line_num
        if None in row:  # DictReader files surplus fields under the key None.
            problems.add(FMT_ROW, line=line, count=len(header))
        elif not is_valid_user_id(user):
            problems.add(FMT_USER_ID, user, expected=EXPECT_USER_ID)
        elif user in seen:
            problems.add(FMT_DUPLICATE, user=user, line=line)
        else:
            seen.add(user)
            options = {k: (v or "").strip() for k, v in row.items() if k in FIELDS}
            entries.append(_validated(user, options, problems))
    return entries


def _validated(user: str, options: Mapping[Any, Any], problems: _Problems) -> Contact:
    values: dict[str, str] = {}
    for option, value in options.items():
        if option not in FIELDS:
            problems.add(FMT_UNKNOWN, user=user, option=option, known=", ".join(FIELDS))
        elif is_valid(value, option):
            values[option] = value
        elif value is not None and value != "":
            problems.add(FMT_OPTION, value, user=user, option=option, expected=EXPECT[option])
    return Contact(user, *(values.get(name) for name in FIELDS))


class HttpDirectory:
    """A CRM: ``GET url_template.format(user_id=...)``. 200 → a Contact from the JSON object's
    members (named by ``field_map``); 404 → None; other statuses, timeouts, connection errors or
    a body that is not a JSON object → DirectoryError. The user id is percent-encoded whole
    (``/``, ``?``, ``#``, a lone ``..``), so it cannot change the host or the path; redirects
    are not followed, so the auth header never travels to another URL."""

    def __init__(
        self,
        url_template: str,
        *,
        client: httpx.AsyncClient | None = None,
        auth_header: str | None = None,
        auth_value: str | None = None,
        timeout: float = 3.0,
        field_map: Mapping[str, str] | None = None,
    ) -> None:
        problems = _Problems("directory")
        try:  # http(s), a host, and {user_id} exactly once and outside the host.
            probe = urlsplit(url_template.format(user_id=_PROBE))
            ok = probe.scheme in ("http", "https") and _PROBE not in probe.netloc
            ok = ok and bool(probe.hostname) and url_template.count("{user_id}") == 1
        except (KeyError, IndexError, ValueError, AttributeError):
            ok = False
        if not ok:
            problems.add(FMT_HTTP, url_template, option="url", expected=EXPECT_URL)
        if bool(auth_header) != bool(auth_value):  # Never show auth_value: it is a secret.
            problems.add(FMT_HTTP, auth_header or "", option="auth_header", expected=EXPECT_AUTH)
        if not timeout > 0:
            problems.add(FMT_HTTP, timeout, option="timeout", expected="more than 0")
        bad = [f"{k}: {v}" for k, v in (field_map or {}).items() if k not in FIELDS or not v]
        if bad:
            problems.add(FMT_HTTP, ", ".join(bad), option="field_map", expected=EXPECT_FIELD_MAP)
        if problems:
            raise ConfigError(problems)
        self._template = url_template
        self._field_map = {**{name: name for name in FIELDS}, **(field_map or {})}
        auth = {auth_header: auth_value} if auth_header and auth_value else {}
        self._headers = {"Accept": "application/json", **auth}
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    def url_for(self, user_id: str) -> str:
        segment = quote(user_id, safe="")
        if segment in (".", ".."):  # URL clients resolve dot segments away ("/users/.." → "/").
            segment = segment.replace(".", "%2E")
        return self._template.format(user_id=segment)

    async def lookup(self, user_id: str) -> Contact | None:
        if not is_valid_user_id(user_id):  # CONTRACT §2: no such user can exist.
            return None
        try:
            response = await self._client.get(
                self.url_for(user_id),
                headers=self._headers,
                timeout=self._timeout,
                follow_redirects=False,  # Also when a shared client would follow them.
            )
        except httpx.TimeoutException:
            raise _failed("directory_timeout") from None
        except httpx.HTTPError:  # Connection refused, TLS, protocol errors: all "unreachable".
            raise _failed("directory_unreachable") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _failed("directory_bad_status", f" (HTTP {response.status_code})")
        try:
            data = response.json()
        except ValueError:
            raise _failed("directory_invalid_json") from None
        if not isinstance(data, dict):
            raise _failed("directory_invalid_json")
        values: dict[str, str] = {}
        for option, member in self._field_map.items():
            value: object = data.get(member)
            if is_valid(value, option):
                values[option] = value
            elif value is not None and value != "":
                # The value stays out of the log: it is personal data.
                log.warning("directory: ignoring the invalid %s of user %r", option, user_id)
        return Contact(user_id, *(values.get(name) for name in FIELDS))

    async def aclose(self) -> None:
        """Close the HTTP client if this directory created it (a shared one is not ours)."""
        if self._owns_client:
            await self._client.aclose()


def _failed(reason: str, detail: str = "") -> DirectoryError:
    log.warning("directory lookup failed: %s%s", reason, detail)
    return DirectoryError(reason=reason)


def build_directory(kind: str, **options: Any) -> Directory:
    """The directory for ``kind``: "file" (option ``path``) or "http" (HttpDirectory's)."""
    if kind == "file":
        return FileDirectory(**options)
    if kind == "http":
        return HttpDirectory(**options)
    problems = _Problems("directory")
    problems.add(FMT_HTTP, kind, option="kind", expected="one of 'file', 'http'")
    raise ConfigError(problems)
