"""A local SMTP server (aiosmtpd) that stores every email it receives as an ``.eml`` file.

The embedded default sends the platform's emails here, so a user can open them (any mail client
opens ``.eml``); tests use it as the real SMTP peer. Run it alone with
``python -m devenv.mailbox --dir var/mail --port 8025``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import time
from pathlib import Path

from devenv.ports import free_port


class _SaveToFolder:
    def __init__(self, folder: Path):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{time.monotonic_ns() % 1_000_000_000:09d}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class _Credentials:
    """An aiosmtpd authenticator accepting one login and password; records each login that succeeded."""

    def __init__(self, login: str, password: str):
        self.login, self.password = login, password
        self.logins: list[str] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.login.encode(), self.password.encode())
        if ok:
            self.logins.append(self.login)
        return AuthResult(success=ok)


class Mailbox:
    """``with Mailbox(folder) as box:`` starts the server on 127.0.0.1:<free port>.

    With ``credentials=(login, password)`` it refuses mail from clients that did not log in with them
    (AUTH PLAIN/LOGIN, without TLS: loopback only), and :attr:`logins` lists the successful logins.
    """

    def __init__(self, folder: Path, port: int | None = None, credentials: tuple[str, str] | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.credentials = credentials
        self._auth = _Credentials(*credentials) if credentials else None
        self._controller = None

    @property
    def logins(self) -> list[str]:
        return list(self._auth.logins) if self._auth else []

    def __enter__(self) -> "Mailbox":
        import warnings

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line at INFO
        auth = {}
        if self._auth:
            auth = {"authenticator": self._auth, "auth_required": True, "auth_require_tls": False}
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS": acceptable on 127.0.0.1, where nothing else listens in.
            warnings.simplefilter("ignore", UserWarning)
            self._controller = Controller(_SaveToFolder(self.folder), hostname="127.0.0.1", port=self.port, **auth)
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._controller:
            self._controller.stop()

    def messages(self) -> list[email.message.EmailMessage]:
        if not self.folder.exists():
            return []
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(self.folder.glob("*.eml"))
        ]

    def connection(self) -> dict:
        """The Airflow ``smtp`` connection to this server (plain SMTP, bounded waits, the login if any)."""
        conn = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 2},
        }
        if self.credentials:
            conn["login"], conn["password"] = self.credentials
        return conn

    def connection_uri_json(self) -> str:
        """The ``AIRFLOW_CONN_SMTP_DEFAULT`` value that points Airflow here."""
        import json

        return json.dumps(self.connection())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var/mail")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args()
    with Mailbox(Path(args.dir), args.port) as box:
        print(f"SMTP on 127.0.0.1:{box.port}, saving to {box.folder}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
