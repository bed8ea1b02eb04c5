"""File-level checks that run before Great Expectations, on the raw bytes, streamed.

What each case gets (the README copies this table):

| case | decision | check name |
| --- | --- | --- |
| empty file (0 bytes) | reject | `empty_file` |
| NUL bytes (binary, not text) | reject | `not_text` |
| not valid UTF-8 | reject, with line and byte offset | `encoding` |
| UTF-8 byte-order mark | accept, noted | - |
| CRLF line endings | accept, noted | - |
| no line break after the last line, line complete | accept, noted | - |
| no line break after the last line, wrong field count | reject | `truncated_last_line` |
| header only / no data rows | reject | `header_only` |
| header not exactly the kind's columns in order | reject, says missing / extra / reordered | `header` |
| a line with the wrong number of fields | reject, up to 20 lines | `column_count` |
| unbalanced quote, a field spanning lines, CSV error | reject | `csv_parse` |
| quoted fields (`"Title, The (1999)"`, `""` inside) | accept (standard CSV) | - |

Nothing is repaired: an accepted file is routed with its bytes unchanged, and the notes say what the
readers downstream (pandas, Spark) were told to expect.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field

CHUNK = 4 * 1024 * 1024
MAX_EXAMPLES = 20
BOM = codecs.BOM_UTF8


@dataclass
class Failure:
    check: str
    message: str
    examples: list[dict] = field(default_factory=list)  # {"line": int, "value": str}; line 1 = header


@dataclass
class ByteScan:
    size: int = 0
    lines: int = 0
    bom: bool = False
    crlf: bool = False
    ends_with_newline: bool = True
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def scan_bytes(handle) -> ByteScan:
    """One streaming pass: size, line count, binary, UTF-8 validity, BOM, line endings."""
    scan = ByteScan()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    last = b""
    first = True
    while chunk := handle.read(CHUNK):
        if first:
            scan.bom = chunk.startswith(BOM)
            first = False
        if b"\x00" in chunk:
            offset = scan.size + chunk.index(b"\x00")
            line = scan.lines + chunk[: chunk.index(b"\x00")].count(b"\n") + 1
            scan.failures.append(Failure("not_text", f"NUL byte at byte {offset} (line {line}): binary data, not a CSV text file", [{"line": line, "value": "\\x00"}]))
            return scan
        try:
            decoder.decode(chunk, final=False)
        except UnicodeDecodeError as err:
            offset = scan.size + err.start
            line = scan.lines + chunk[: err.start].count(b"\n") + 1
            bad = chunk[err.start : err.start + 4]
            scan.failures.append(
                Failure("encoding", f"not valid UTF-8 at byte {offset} (line {line}): {err.reason}; save the file as UTF-8", [{"line": line, "value": bad.hex(" ")}])
            )
            return scan
        if b"\r\n" in chunk or (last.endswith(b"\r") and chunk.startswith(b"\n")):
            scan.crlf = True
        scan.lines += chunk.count(b"\n")
        scan.size += len(chunk)
        last = chunk
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:
        scan.failures.append(Failure("encoding", f"not valid UTF-8: the file ends inside a character ({err.reason})", []))
    if scan.size == 0:
        scan.failures.append(Failure("empty_file", "the file is empty (0 bytes)"))
        return scan
    scan.ends_with_newline = last.endswith(b"\n")
    if scan.bom:
        scan.notes.append("UTF-8 byte-order mark at the start: accepted, ignored when reading")
    if scan.crlf:
        scan.notes.append("CRLF (Windows) line endings: accepted")
    return scan


def describe_header(found: list[str], expected: list[str]) -> str:
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    if not missing and not extra:
        parts.append("columns in the wrong order")
    return f"header {found} is not {expected}: " + ", ".join(parts)


def iter_records(handle, expected: list[str], scan: ByteScan, failures: list[Failure]):
    """Yield (line number, fields) of the data rows; record structural failures in ``failures``.

    Stops yielding after the first header or CSV failure (nothing after it can be trusted).
    """
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    width = len(expected)
    bad_width: list[dict] = []
    bad_width_count = 0
    try:
        header = next(reader, None)
        if header is None:
            failures.append(Failure("empty_file", "the file has no header line"))
            return
        header = [h.strip() for h in header]
        if header != expected:
            failures.append(Failure("header", describe_header(header, expected), [{"line": 1, "value": ",".join(header)}]))
            return
        rows = 0
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue  # a blank line carries no data
            rows += 1
            if len(fields) != width:
                bad_width_count += 1
                if len(bad_width) < MAX_EXAMPLES:
                    bad_width.append({"line": line, "value": ",".join(fields)[:200]})
                continue
            if any("\n" in f or "\r" in f for f in fields):
                failures.append(Failure("csv_parse", f"a quoted field spans lines near line {line}: unbalanced quote?", [{"line": line, "value": ",".join(fields)[:200]}]))
                return
            yield line, fields
        if rows == 0:
            failures.append(Failure("header_only", "the file has a header but no data rows"))
    except csv.Error as err:
        failures.append(Failure("csv_parse", f"CSV cannot be parsed at line {reader.line_num}: {err}", [{"line": reader.line_num, "value": str(err)}]))
        return
    finally:
        text.detach()
    if bad_width_count:
        last_line = bad_width[-1]["line"] if bad_width else 0
        if bad_width_count == 1 and not scan.ends_with_newline and last_line >= scan.lines:
            failures.append(Failure("truncated_last_line", f"the last line is cut short (no line break, {width} fields expected): the upload may be incomplete", bad_width))
        else:
            failures.append(Failure("column_count", f"{bad_width_count} line(s) do not have {width} fields", bad_width))
