"""Settings: loading, secrets, relative paths, and errors that name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import ConfigError, Settings

EXAMPLE = Path(__file__).parents[2] / "config" / "closeloop.example.toml"
ENV = {"SUPPORT_IMAP_PASSWORD": "imap-secret", "SMTP_PASSWORD": "smtp-secret"}

MINIMAL = """
[[inboxes]]
name = "support"
address = "Support@Example.org"
[inboxes.imap]
host = "imap.example.org"
username = "support@example.org"
password = "{password}"
[smtp]
host = "smtp.example.org"
[[staff]]
name = "Sam Rivera"
email = "sam@example.org"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "closeloop.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_config_is_valid_and_complete() -> None:
    settings = Settings.load(EXAMPLE, ENV)
    assert settings.inboxes[0].imap.password.get_secret_value() == "imap-secret"
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "smtp-secret"
    assert settings.team.timezone == "Europe/Berlin"


def test_defaults_and_normalised_addresses(tmp_path: Path) -> None:
    settings = Settings.load(write(tmp_path, MINIMAL.format(password="literal")), {})
    inbox = settings.inboxes[0]
    assert inbox.address == "support@example.org"
    assert inbox.imap.port == 993 and inbox.imap.security == "tls" and inbox.imap.folder == "INBOX"
    assert settings.smtp.security == "starttls"
    assert settings.cadence.promise_business_days == 3


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    settings = Settings.load(write(tmp_path, MINIMAL.format(password="x")), {})
    assert settings.templates.dir == tmp_path / "templates"
    assert settings.database.url == f"sqlite:///{tmp_path}/data/closeloop.db"


def test_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "imap.pw").write_text("from-file\n", encoding="utf-8")
    settings = Settings.load(write(tmp_path, MINIMAL.format(password="file:imap.pw")), {})
    assert settings.inboxes[0].imap.password.get_secret_value() == "from-file"


def test_secrets_never_show_in_reprs(tmp_path: Path) -> None:
    settings = Settings.load(write(tmp_path, MINIMAL.format(password="env:PW")), {"PW": "hunter2-secret"})
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings)


def test_missing_environment_secret_names_file_key_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.format(password="env:NOPE"))
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, {})
    message = str(caught.value)
    assert str(path) in message
    assert "inboxes[0].imap.password" in message
    assert "NOPE is not set" in message


def test_unreadable_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inboxes\[0\]\.imap\.password: cannot read secret file"):
        Settings.load(write(tmp_path, MINIMAL.format(password="file:/nonexistent/pw")), {})


def test_missing_key(tmp_path: Path) -> None:
    text = MINIMAL.format(password="x").replace('host = "smtp.example.org"', "")
    with pytest.raises(ConfigError, match=r"smtp\.host: missing"):
        Settings.load(write(tmp_path, text), {})


def test_wrong_type(tmp_path: Path) -> None:
    text = MINIMAL.format(password="x").replace('host = "imap.example.org"', 'host = "imap.example.org"\nport = "x"')
    with pytest.raises(ConfigError, match=r"inboxes\[0\]\.imap\.port: .*integer"):
        Settings.load(write(tmp_path, text), {})


def test_a_wrongly_typed_password_is_not_echoed(tmp_path: Path) -> None:
    text = MINIMAL.format(password="x").replace('password = "x"', "password = 987654321")
    with pytest.raises(ConfigError) as caught:
        Settings.load(write(tmp_path, text), {})
    assert "987654321" not in str(caught.value)


def test_unknown_key_is_a_spelling_mistake(tmp_path: Path) -> None:
    text = MINIMAL.format(password="x") + "\n[cadence]\npromise_busines_days = 3\n"
    with pytest.raises(ConfigError, match=r"cadence\.promise_busines_days: unknown key"):
        Settings.load(write(tmp_path, text), {})


def test_bad_timezone(tmp_path: Path) -> None:
    text = MINIMAL.format(password="x") + '\n[team]\ntimezone = "Mars/Olympus"\n'
    with pytest.raises(ConfigError, match=r"team\.timezone: unknown timezone"):
        Settings.load(write(tmp_path, text), {})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(write(tmp_path, "[database\n"), {})
    with pytest.raises(ConfigError, match="no such file"):
        Settings.load(tmp_path / "absent.toml", {})


def test_inbox_owner_must_be_staff(tmp_path: Path) -> None:
    text = MINIMAL.format(password="x").replace("[inboxes.imap]", 'owner = "ghost@example.org"\n[inboxes.imap]')
    with pytest.raises(ConfigError, match=r"ghost@example\.org is not listed"):
        Settings.load(write(tmp_path, text), {})


def _keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    found = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if name == "source":
            continue
        found.append(prefix + name)
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            inner = getattr(candidate, "__args__", (candidate,))[0] if candidate is not None else None
            for kind in (candidate, inner):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    found += _keys(kind, f"{prefix}{name}.")
    return found


def test_the_example_documents_every_key() -> None:
    """Every setting appears in config/closeloop.example.toml, written or commented out."""
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [
        key
        for key in _keys(Settings)
        if not any(
            line.lstrip("# ").startswith((key.rsplit(".", 1)[-1] + " =", f"[{key}]", f"[[{key}]]"))
            for line in text.splitlines()
        )
    ]
    assert missing == []
