"""A private Dovecot IMAP server in a temporary folder, and per-test accounts on it."""

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from . import free_port
from .tls import TlsFiles

MAIL_UID = MAIL_GID = 65534  # nobody:nogroup; Dovecot refuses to run mail processes as root
START_TIMEOUT = 15.0

# What Dovecot 2.3 advertises after login, less MOVE and CONDSTORE (and QRESYNC, which implies CONDSTORE).
RESTRICTED_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY "
    "SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
mailbox_idle_check_interval = 1 secs
first_valid_uid = {uid}
{capability}
{ssl}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service ipc {{
  chroot =
}}
service old-stats {{
  chroot =
}}
"""


@dataclass(frozen=True, kw_only=True)
class ImapAccount:
    """One mailbox on a test Dovecot; the helpers open their own short connections with imapclient."""

    host: str
    port: int
    tls_port: int | None
    username: str
    password: str

    @contextlib.contextmanager
    def client(self) -> Iterator[IMAPClient]:
        """A logged-in plain-text connection, logged out on exit."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(self.username, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, raw: bytes, folder: str = "INBOX", flags: Sequence[str] = ()) -> int:
        """Store ``raw`` in ``folder`` and return its UID (from Dovecot's APPENDUID answer)."""
        with self.client() as client:
            response = client.append(folder, raw, flags=tuple(flags))
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response)
        if match is None:
            raise AssertionError(f"APPEND answered without APPENDUID: {response!r}")
        return int(match.group(1))

    def uids(self, folder: str = "INBOX") -> list[int]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))

    def fetch_flags(self, folder: str = "INBOX") -> dict[int, frozenset[str]]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            flags = client.get_flags(client.search("ALL"))
        return {uid: frozenset(_text(flag) for flag in found) for uid, found in flags.items()}

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """Every message's raw bytes in UID order, read with BODY.PEEK[] so no \\Seen flag is set."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]

    def create_folder(self, name: str) -> None:
        with self.client() as client:
            client.create_folder(name)

    def delete_folder(self, name: str) -> None:
        with self.client() as client:
            client.delete_folder(name)


class DovecotServer:
    """Dovecot with its own config, base_dir and mail root, listening on free loopback ports.

    With ``tls`` it also listens for implicit TLS on ``tls_port`` and offers STARTTLS on ``port``.
    ``capabilities`` replaces the advertised capability list (``imap_capability``), e.g.
    :data:`RESTRICTED_CAPABILITIES` for a server without MOVE and CONDSTORE. Only the advertisement
    changes: Dovecot still executes MOVE for a client that sends it anyway.
    """

    def __init__(self, *, tls: TlsFiles | None = None, capabilities: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.tls = tls
        self.capabilities = capabilities
        # Not under pytest's tmp_path: its parents are 0700 root, and the mail processes run as nobody.
        self.root = Path(tempfile.mkdtemp(prefix="closeloop-dovecot-"))
        self.root.chmod(0o755)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    @property
    def ca_file(self) -> Path | None:
        return self.tls.ca_file if self.tls else None

    def start(self) -> None:
        """Write the config, start ``dovecot -F`` and wait until it greets on its port.

        :raises RuntimeError: with Dovecot's log when it is missing, exits or does not answer in time.
        """
        try:
            self._launch()
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop Dovecot and every process in its group, then remove its folder."""
        process, self._process = self._process, None
        if process is not None:
            _kill_group(process)
        shutil.rmtree(self.root, ignore_errors=True)

    def add_user(self, username: str | None = None, password: str | None = None) -> ImapAccount:
        """Add a mail user with an empty mailbox, usable at once.

        Each user has a passwd-file of its own (``users/%u``): Dovecot rereads a changed passwd-file, but
        checks for changes at most once a second, so a user appended to a shared file right after another
        login is "unknown" for up to a second.
        """
        username = username or f"user-{secrets.token_hex(4)}"
        password = password or secrets.token_urlsafe(12)
        if not re.fullmatch(r"[\w.@+-]+", username) or ":" in password:
            raise ValueError(f"unsupported test username or password: {username!r}")
        home = self.root / "mail" / username
        line = f"{username}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_GID}::{home}::\n"
        (self.users_dir / username).write_text(line)
        return ImapAccount(host=self.host, port=self.port, tls_port=self.tls_port, username=username, password=password)

    def log(self) -> str:
        """Dovecot's log so far, for a failing test's message."""
        parts = [self.root / "stderr.log", self.root / "dovecot.log"]
        return "".join(path.read_text(errors="replace") for path in parts if path.exists())

    def __enter__(self) -> "DovecotServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _config(self) -> str:
        capability = f"imap_capability = {self.capabilities}" if self.capabilities else ""
        ssl = f"ssl = yes\nssl_cert = <{self.tls.cert_file}\nssl_key = <{self.tls.key_file}" if self.tls else "ssl = no"
        return _CONFIG.format(
            root=self.root,
            uid=MAIL_UID,
            port=self.port,
            tls_port=self.tls_port or 0,
            capability=capability,
            ssl=ssl,
        )

    def _launch(self) -> None:
        executable = shutil.which("dovecot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if executable is None:
            raise RuntimeError("dovecot is not installed: apt-get install dovecot-imapd (bash .ci/run does)")
        mail_root = self.root / "mail"
        mail_root.mkdir()
        os.chown(mail_root, MAIL_UID, MAIL_GID)
        self.users_dir.mkdir(mode=0o755)
        self.config_file.write_text(self._config())
        with (self.root / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                [executable, "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._process.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer on {self.host}:{self.port} in {START_TIMEOUT}s:\n{self.log()}")


def _kill_group(process: "subprocess.Popen[bytes]") -> None:
    """SIGTERM the process group, give Dovecot a few seconds, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _text(flag: bytes | str) -> str:
    return flag.decode() if isinstance(flag, bytes) else flag
