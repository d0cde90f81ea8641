"""One frozen, validated Settings object, loaded from TOML and the environment.

``Settings.load(path, environ)`` is the only place that reads the config file and the environment. Secrets may be
written literally, as ``env:NAME`` or as ``file:/path``; they are resolved here and held as ``SecretStr`` so they
never show up in a repr or a log line. Relative paths resolve against the config file's folder.
Validation uses pydantic (well-kept, precise error locations); every error is reported as
``file: key: problem (fix)`` by :class:`ConfigError`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

CONFIG_ENV = "CLOSELOOP_CONFIG"
Security = Literal["tls", "starttls", "none"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """A configuration problem, naming the file, the key and what to do about it."""

    def __init__(self, path: Path | str | None, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")


def _email(value: str) -> str:
    value = value.strip().lower()
    if value.count("@") != 1 or not value.partition("@")[0] or "." not in value.partition("@")[2]:
        raise ValueError(f"{value!r} is not an email address")
    return value


def _parse_hours(value: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError as exc:
        raise ValueError(f"expected HH:MM-HH:MM, e.g. 09:00-17:00 (got {value!r})") from exc
    return start, end


def _resolve_secret(value: object, info: ValidationInfo) -> object:
    """Turn ``env:NAME`` and ``file:/path`` into the secret they point at."""
    if not isinstance(value, str):
        return value
    context = info.context or {}
    if value.startswith("env:"):
        name = value[4:]
        environ: Mapping[str, str] = context.get("environ", {})
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set (export it, or write the secret here)")
        return environ[name]
    if value.startswith("file:"):
        path = _resolve_path(value[5:], info)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(
                f"cannot read secret file {path}: {exc.strerror} (check the path and permissions)"
            ) from exc
    return value


def _resolve_path(value: str | Path, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    base: Path | None = (info.context or {}).get("base")
    return path if path.is_absolute() or base is None else base / path


_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def _path(value: object, info: ValidationInfo) -> object:
    return _resolve_path(value, info) if isinstance(value, str | Path) else value


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]
RelativePath = Annotated[Path, BeforeValidator(_path)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class Database(Section):
    url: str = "sqlite:///data/closeloop.db"
    echo: bool = False

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The URL is the one setting that may embed a password (``postgresql://user:pw@host/db``): not in a repr."""
        for name, value in super().__repr_args__():
            yield name, _PASSWORD_IN_URL.sub(r"\1***@", value) if name == "url" else value

    @field_validator("url")
    @classmethod
    def _sqlite_relative_to_config(cls, url: str, info: ValidationInfo) -> str:
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            rest = url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str(_resolve_path(rest, info))
        if not url.startswith(("sqlite:", "postgresql")):
            raise ValueError("expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        return url


class Templates(Section):
    dir: RelativePath = Path("templates")
    language: str = "en"
    max_output_chars: int = Field(200_000, gt=0)
    time_limit_seconds: float = Field(2.0, gt=0)


class Imap(Section):
    host: str
    port: int = Field(993, gt=0, lt=65536)
    security: Security = "tls"
    username: str
    password: Secret
    folder: str = "INBOX"
    processed_keyword: str = "$Closeloop"
    move_to: str | None = None
    batch_size: int = Field(200, gt=0, le=5000)
    timeout_seconds: float = Field(60.0, gt=0)
    idle_renew_minutes: float = Field(9.0, gt=0, le=28)
    poll_seconds: float = Field(60.0, gt=0)
    ca_file: RelativePath | None = None

    @field_validator("processed_keyword")
    @classmethod
    def _atom(cls, keyword: str) -> str:
        if not keyword or any(c in keyword for c in ' ()[]{}%*"\\\r\n') or keyword.startswith("\\"):
            raise ValueError("an IMAP keyword is one atom without spaces or special characters, e.g. $Closeloop")
        return keyword


class Maildir(Section):
    """A local Maildir on the mail host, read instead of IMAP (mail is never moved, flagged or deleted)."""

    path: RelativePath
    folder: str = "INBOX"
    batch_size: int = Field(200, gt=0, le=5000)
    wait_seconds: float = Field(300.0, gt=0)


class Inbox(Section):
    name: str
    address: str
    display_name: str = ""
    aliases: tuple[str, ...] = ()
    owner: str | None = None
    language: str | None = None
    message_id_domain: str | None = None
    require_own_recipient: bool = True
    imap: Imap | None = None
    maildir: Maildir | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Inbox:
        if (self.imap is None) == (self.maildir is None):
            raise ValueError("give the inbox exactly one of [inboxes.imap] or [inboxes.maildir]")
        return self

    @property
    def batch_size(self) -> int:
        return self.imap.batch_size if self.imap else self.maildir.batch_size if self.maildir else 200

    @property
    def folder(self) -> str:
        return self.imap.folder if self.imap else self.maildir.folder if self.maildir else "INBOX"

    @field_validator("address", "aliases", "owner")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _email(value)
        if isinstance(value, tuple | list):
            return tuple(_email(v) for v in value)
        return value

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset((self.address, *self.aliases))

    @property
    def id_domain(self) -> str:
        return self.message_id_domain or self.domain


class Retry(Section):
    max_attempts: int = Field(8, gt=0)
    first_delay_seconds: float = Field(60.0, gt=0)
    max_delay_seconds: float = Field(3600.0, gt=0)


class Smtp(Section):
    host: str
    port: int = Field(587, gt=0, lt=65536)
    security: Security = "starttls"
    username: str | None = None
    password: Secret | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    ca_file: RelativePath | None = None
    retry: Retry = Retry()

    @model_validator(mode="after")
    def _login_needs_both(self) -> Smtp:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both, or neither for an unauthenticated relay")
        return self


class StaffMember(Section):
    name: str
    email: str

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return _email(value)


class Team(Section):
    timezone: str = "UTC"
    business_hours: str = "09:00-17:00"
    business_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    holidays: tuple[date, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {name!r}; use an IANA name such as Europe/Berlin") from exc
        return name

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, end = _parse_hours(value)
        if start >= end:
            raise ValueError("the day must start before it ends, e.g. 09:00-17:00")
        return value

    @field_validator("business_days")
    @classmethod
    def _days(cls, days: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [d for d in days if d.lower()[:3] not in WEEKDAYS]
        if unknown or not days:
            raise ValueError(f"use weekday names like mon, tue (got {list(days)})")
        return tuple(d.lower()[:3] for d in days)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hours(self) -> tuple[time, time]:
        return _parse_hours(self.business_hours)

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(d) for d in self.business_days)


class Cadence(Section):
    promise_business_days: int = Field(3, ge=1, le=60)
    thank_you_after_hours: float = Field(24.0, ge=0)
    follow_through_every_business_days: int = Field(3, ge=1, le=60)
    follow_through_max: int = Field(3, ge=0, le=20)
    check_in_after_days: int = Field(90, ge=1)
    check_in_close_after_days: int = Field(14, ge=1)
    out_of_office_pause_days: int = Field(5, ge=1, le=60)


class Http(Section):
    """The health and metrics endpoint (``/healthz``, ``/metrics``); off unless ``listen`` is set."""

    listen: str | None = None
    overdue_after_minutes: float = Field(15.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _address(cls, listen: str | None) -> str | None:
        if listen:
            from daemon.observe import parse_listen

            parse_listen(listen)
        return listen or None


class Logging(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "human", "json"] = "auto"


class Limits(Section):
    """Caps on automated mail, so a robot that answers everything cannot start a mail loop."""

    per_recipient: int = Field(3, ge=1)
    window_hours: float = Field(24.0, gt=0)


class Daemon(Section):
    tick_seconds: float = Field(30.0, gt=0)
    dispatch_batch: int = Field(200, gt=0)


class Settings(Section):
    """Everything closeloop is configured with. Build it with :meth:`load`."""

    source: Path | None = None
    database: Database = Database()
    templates: Templates = Templates()
    team: Team = Team()
    cadence: Cadence = Cadence()
    daemon: Daemon = Daemon()
    limits: Limits = Limits()
    http: Http = Http()
    logging: Logging = Logging()
    inboxes: tuple[Inbox, ...] = Field(min_length=1)
    smtp: Smtp
    staff: tuple[StaffMember, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        """Missing optional sections are validated as empty ones, so their defaults resolve like written ones."""
        if isinstance(data, dict):
            for key in ("database", "templates", "team", "cadence", "daemon", "limits", "http", "logging"):
                data.setdefault(key, {})
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        names = [i.name for i in self.inboxes]
        if len(set(names)) != len(names):
            raise ValueError(f"inbox names must be unique (got {names})")
        staff = {s.email for s in self.staff}
        for inbox in self.inboxes:
            if inbox.owner is not None and inbox.owner not in staff:
                raise ValueError(f"inbox {inbox.name!r}: owner {inbox.owner} is not listed in [[staff]]")
        return self

    @classmethod
    def load(cls, path: Path | str, environ: Mapping[str, str]) -> Settings:
        """Read and validate the TOML file at ``path``.

        :raises ConfigError: naming the file, the key and the problem.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(path, "", f"no such file; pass --config PATH or set {CONFIG_ENV}") from exc
        except OSError as exc:
            raise ConfigError(path, "", f"cannot read it: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(path, "", f"not valid TOML: {exc}") from exc
        return cls.from_mapping(data, environ, base=path.resolve().parent, source=path)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], environ: Mapping[str, str], *, base: Path, source: Path | None = None
    ) -> Settings:
        """Validate an already-parsed mapping (tests and the demo build settings this way)."""
        try:
            return cls.model_validate({**data, "source": source}, context={"environ": environ, "base": base})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(source, _key(first["loc"]), _problem(first)) from None

    @property
    def staff_addresses(self) -> frozenset[str]:
        return frozenset(s.email for s in self.staff)

    def inbox(self, name: str) -> Inbox:
        for inbox in self.inboxes:
            if inbox.name == name:
                return inbox
        raise KeyError(name)


def _key(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _problem(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing; this key is required (see config/closeloop.example.toml)"
    if kind == "extra_forbidden":
        return "unknown key; check the spelling against config/closeloop.example.toml"
    message = str(error["msg"]).removeprefix("Value error, ")
    secret = any(part in ("password",) for part in error["loc"])
    if "input" in error and kind != "value_error" and not secret and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return message
