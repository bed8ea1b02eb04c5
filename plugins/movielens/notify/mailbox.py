"""A local SMTP server (aiosmtpd) that stores every email it receives as an ``.eml`` file.

The embedded default sends the platform's emails here, so a user can open them (any mail client
opens ``.eml``); tests use it as the real SMTP peer. Run it alone with
``python -m movielens.notify.mailbox --dir var/mail --port 8025``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import socket
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _SaveToFolder:
    def __init__(self, folder: Path):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{time.monotonic_ns() % 1_000_000_000:09d}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class Mailbox:
    """``with Mailbox(folder) as box:`` starts the server on 127.0.0.1:<free port>."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self._controller = None

    def __enter__(self) -> "Mailbox":
        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line at INFO
        self._controller = Controller(_SaveToFolder(self.folder), hostname="127.0.0.1", port=self.port)
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

    def connection_uri_json(self) -> str:
        """The ``AIRFLOW_CONN_SMTP_DEFAULT`` value that points Airflow here (plain SMTP, bounded waits)."""
        import json

        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": self.port,
                "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 2},
            }
        )


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
