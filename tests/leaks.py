"""Looking for secrets where they must never be: task logs, the metadata DB, lake objects, emails.

A secret can hide in an encoding, so each one is searched in several forms: as is, URL-quoted (in a
connection URI), JSON-escaped, and base64 / base64url (SMTP AUTH, MIME bodies, basic-auth headers) at
each of the three byte offsets a base64 group can start at. Emails are also searched part by part after
MIME decoding (quoted-printable can split a secret across soft line breaks). Compressed bytes (Parquet
pages) are searched as stored: a secret would have to be written as data to be there.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote, quote_plus

Blob = tuple[str, bytes]  # (where, content)


def secret_forms(secret: str) -> dict[str, bytes]:
    """The byte strings that betray ``secret``, by encoding."""
    if len(secret) < 12:
        raise ValueError("use secrets of 12 characters or more: shorter ones match by chance in base64")
    raw = secret.encode()
    forms = {
        "raw": raw,
        "url-quoted": quote(secret, safe="").encode(),
        "url-quoted (+ for space)": quote_plus(secret).encode(),
        "JSON-escaped": json.dumps(secret)[1:-1].encode(),
    }
    for offset in range(3):
        tail = raw[offset:]
        whole_groups = tail[: len(tail) // 3 * 3]  # only the groups that do not depend on the next byte
        forms[f"base64 (offset {offset})"] = base64.b64encode(whole_groups)
        forms[f"base64url (offset {offset})"] = base64.urlsafe_b64encode(whole_groups)
    distinct: dict[bytes, str] = {}
    for form, data in forms.items():  # one name per byte string (e.g. JSON-escaped is often the raw form)
        distinct.setdefault(data, form)
    return {form: data for data, form in distinct.items()}


def find(secrets: Mapping[str, str], blobs: Iterable[Blob]) -> list[str]:
    """Every (secret, form, place) where a secret shows; ``[]`` when none does."""
    forms = [(label, form, data) for label, secret in secrets.items() for form, data in secret_forms(secret).items()]
    found = []
    for where, content in blobs:
        for label, form, data in forms:
            if data in content:
                found.append(f"{label} ({form}) in {where}")
    return sorted(set(found))


def files(*roots: Path) -> Iterator[Blob]:
    """Every file under each root (a root may itself be a file)."""
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            yield str(path), path.read_bytes()


def emails(folder: Path) -> Iterator[Blob]:
    """Each ``.eml`` as received, then its headers and every part MIME-decoded."""
    for path in sorted(Path(folder).glob("*.eml")):
        raw = path.read_bytes()
        yield str(path), raw
        message = email.message_from_bytes(raw, policy=email.policy.default)
        yield f"{path} (headers)", "\n".join(f"{k}: {v}" for k, v in message.items()).encode()
        for number, part in enumerate(message.walk()):
            payload = part.get_payload(decode=True)
            if payload:
                yield f"{path} (part {number}, decoded)", payload
