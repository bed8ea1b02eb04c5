"""File-level checks, run on the raw bytes while the file streams, before any row is typed or validated.

:class:`ByteChecker` wraps the opened file: the CSV parser (``pyarrow.csv.open_csv``) reads through it,
so every byte is checked exactly once, in the same pass that parses the rows, without holding the file
in memory. Nothing is ever repaired or guessed: a file is either accepted as written (the bytes routed
to ``validated/`` are the landed bytes, unchanged) with a note saying what the readers downstream must
cope with, or rejected with one of the reason codes below. Line numbers are 1-based lines of the file
(the header is line 1); byte offsets are 0-based from the start of the file.

Decision table (the README copies it):

| case | decision | check |
| --- | --- | --- |
| 0 bytes, or nothing but a BOM, whitespace and line breaks | reject | `empty_file` |
| header line and no data rows (blank lines after it don't count) | reject | `header_only` |
| a NUL byte anywhere (binary data, e.g. a zip or parquet file named .csv) | reject, byte offset + line | `binary` |
| bytes that are not valid UTF-8 (e.g. Latin-1 `é` = `0xE9`), or a character cut at the end | reject, byte offset + line | `not_utf8` |
| UTF-8 byte-order mark at the start | accept, skipped for the header, noted | - |
| CRLF line endings (all or some lines) | accept, noted (how many lines) | - |
| a carriage return not followed by a line feed (old Mac endings, a stray `\\r`) | reject, byte offset + line | `stray_carriage_return` |
| quoted fields (`"Heat, The (1995)"`, `""` for a quote, quoted numbers) | accept (RFC 4180), noted | - |
| a quote that is never closed (odd number of `"` from a line to the end of the file; also a stray `"` inside an unquoted field) | reject | `unbalanced_quote` |
| a quoted field that contains a line break (closed on a later line) | reject (Spark reads the lake line by line: `multiLine` is off) | `embedded_newline` |
| first line longer than 1 MiB (no line break: not a CSV header) | reject | `columns` |
| header not exactly the suite's column list (names, order; quoted names are fine, spaces are not) | reject, says missing / extra / reordered | `columns` |
| a line with the wrong number of fields | reject, total + up to 20 lines | `column_count` |
| blank lines between data lines | reject, total + up to 20 lines | `blank_line` |
| blank lines at the end of the file | accept, noted (every CSV reader skips them) | - |
| no line break after the last line, and the last line has every field | accept, noted (its values are checked like any other row's) | - |
| no line break after the last line, and the last line has too few/many fields | reject (the upload was probably cut) | `truncated_last_line` |
| any other CSV parser error | reject, the parser's message | `csv_parse_error` |
| number fields with spaces, `+`, hex, `nan`, `inf`, thousands separators | reject as a type failure of the column (the suite's `<column>_type`) | `<column>_type` |

Structural failures (`empty_file`, `binary`, `not_utf8`, `stray_carriage_return`, `unbalanced_quote`,
`embedded_newline`, `columns`, `csv_parse_error`) stop the validation: the rows cannot be trusted, so
no row-level check runs. `column_count`, `blank_line` and `truncated_last_line` skip the bad lines and
still check every other row, with correct line numbers.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass, field

import numpy as np

from movielens.validation.model import MAX_EXAMPLES, Failure

BOM = codecs.BOM_UTF8
HEADER_LIMIT = 1 << 20  # a first line longer than this is not a CSV header
HEADER_READ = 1 << 16
TAIL_LIMIT = 1 << 20  # bytes of an unterminated last line kept for the truncation check
LINE_LIMIT_STORED = 1_000_000  # line numbers kept for line mapping (blank lines); beyond: counted only
VALUE_LIMIT = 200  # characters of a line shown in an example

# Reason codes.
EMPTY_FILE = "empty_file"
HEADER_ONLY = "header_only"
BINARY = "binary"
NOT_UTF8 = "not_utf8"
STRAY_CR = "stray_carriage_return"
UNBALANCED_QUOTE = "unbalanced_quote"
EMBEDDED_NEWLINE = "embedded_newline"
COLUMNS = "columns"
COLUMN_COUNT = "column_count"
BLANK_LINE = "blank_line"
TRUNCATED_LAST_LINE = "truncated_last_line"
CSV_PARSE_ERROR = "csv_parse_error"

STRUCTURAL = frozenset(
    {EMPTY_FILE, BINARY, NOT_UTF8, STRAY_CR, UNBALANCED_QUOTE, EMBEDDED_NEWLINE, COLUMNS, CSV_PARSE_ERROR}
)

# Bytes a data line of an all-numeric file may contain for the fast (typed) parse; anything else
# (letters, spaces, '+', 'x' of hex...) sends the file to the strict parse, which checks every number
# field against the strict patterns of movielens.validation.evaluator.
NUMERIC_ALPHABET = b"0123456789-.eE,\r\n\""


class FileCheckError(Exception):
    """A structural problem found in the bytes; carries the :class:`Failure` to report."""

    def __init__(self, failure: Failure):
        super().__init__(failure.message)
        self.failure = failure


class NeedsStrictParse(Exception):
    """The fast typed parse cannot be trusted for this file (a byte outside NUMERIC_ALPHABET)."""


def _show(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    return text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT] + "..."


@dataclass
class ByteSummary:
    """What the byte pass saw; read it after the stream reached its end."""

    size: int = 0
    lines: int = 0  # physical lines, the last one counted even without a line break
    bom: bool = False
    crlf_lines: int = 0
    quoted: bool = False
    ends_with_newline: bool = True
    last_line: bytes = b""  # the unterminated last line (when ends_with_newline is False)
    last_line_complete: bool = True  # False when longer than TAIL_LIMIT (kept truncated)
    blank_lines: list[int] = field(default_factory=list)  # between data lines (stored up to a limit)
    blank_count: int = 0
    trailing_blank_lines: int = 0


class ByteChecker:
    """A read-only binary stream over ``raw`` that checks every byte it hands out.

    Use :meth:`read_header` first (the BOM and the header line are consumed), then give the object to
    the CSV parser. Structural problems raise :class:`FileCheckError` from :meth:`read` (the parser
    passes the exception through); everything else is collected in :attr:`summary`.
    """

    def __init__(self, raw, *, numeric_alphabet: bool = False):
        self._raw = raw
        self._alphabet_delete = NUMERIC_ALPHABET if numeric_alphabet else None
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._decoder_pending = 0
        self._offset = 0  # file offset of the next byte read from raw
        self._nl = 0  # line breaks seen
        self._cur_len = 0  # bytes of the current (unfinished) line
        self._cur_is_cr = False  # the current line so far is exactly b"\r"
        self._pending_cr = False  # the last chunk ended with b"\r"
        self._quote_parity = 0
        self._tail = bytearray()
        self._last_nonblank = 0  # last line number holding something
        self._blank_all: list[int] = []  # every blank line found (stored up to a limit)
        self._buffer = b""
        self._eof = False
        self._finished = False
        self.summary = ByteSummary()
        self.closed = False

    # --- stream protocol (what pyarrow's PythonFile needs) ---------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def read(self, size: int = -1) -> bytes:
        if self._buffer:
            if size is None or size < 0 or size >= len(self._buffer):
                data, self._buffer = self._buffer, b""
            else:
                data, self._buffer = self._buffer[:size], self._buffer[size:]
        else:
            # Fill the request (a lake stream may return short reads); each piece is checked as it comes.
            want = size if size and size > 0 else 1 << 24
            data = self._next(want)
            if data and len(data) < want:
                pieces = [data]
                got = len(data)
                while got < want and (more := self._next(want - got)):
                    pieces.append(more)
                    got += len(more)
                data = b"".join(pieces)
        if data and self._alphabet_delete is not None and data.translate(None, self._alphabet_delete):
            raise NeedsStrictParse()
        return data

    # --- header -----------------------------------------------------------------------------------

    def read_header(self) -> bytes:
        """Consume the BOM and the first line; return the header line without its line ending."""
        buf = b""
        while True:
            nl = buf.find(b"\n")
            if nl >= 0 or self._eof:
                break
            if len(buf) > HEADER_LIMIT:
                raise FileCheckError(
                    Failure(COLUMNS, f"the first line is longer than {HEADER_LIMIT} bytes without a line break: not a CSV header",
                            [{"line": 1, "value": _show(buf[:VALUE_LIMIT])}])
                )
            buf += self._next(HEADER_READ)
        if buf.startswith(BOM):
            self.summary.bom = True
            buf = buf[len(BOM):]
        nl = buf.find(b"\n")
        if nl < 0:
            header, self._buffer = buf, b""
        else:
            header, self._buffer = buf[:nl], buf[nl + 1 :]
        if header.endswith(b"\r"):
            header = header[:-1]
        if not header.strip():
            # Nothing on the first line: an empty file, or a file that does not start with its header.
            rest = self._buffer
            while rest.strip() == b"" and not self._eof:
                rest = self._next(1 << 20)
            if rest.strip() == b"":
                self._drain()
                raise FileCheckError(Failure(EMPTY_FILE, self._empty_message()))
            raise FileCheckError(
                Failure(COLUMNS, "line 1 is blank: the first line must be the header", [{"line": 1, "value": ""}])
            )
        return header

    def _empty_message(self) -> str:
        if self.summary.size == 0:
            return "the file is empty (0 bytes)"
        return f"the file has no text ({self.summary.size} bytes of byte-order mark, whitespace and line breaks)"

    # --- checks -----------------------------------------------------------------------------------

    def _next(self, size: int) -> bytes:
        if self._eof:
            return b""
        data = self._raw.read(size)
        if not data:
            self._eof = True
            self._finish()
            return b""
        self._inspect(bytes(data))
        return data

    def _context(self, data: bytes, pos: int) -> bytes:
        """The whole line holding ``data[pos]`` for an example (``pos=-1``: the line ending at data[0]).

        The start may lie in earlier chunks (kept in the tail); the end may lie ahead, in which case a
        little more is read: only ever called just before raising, when nothing more is parsed.
        """
        if pos < 0:
            return bytes(self._tail)
        start = data.rfind(b"\n", 0, pos) + 1
        prefix = bytes(self._tail) if start == 0 else b""
        end = data.find(b"\n", pos)
        if end >= 0:
            return prefix + data[start:end]
        more = b""
        while b"\n" not in more and len(more) < VALUE_LIMIT * 4:
            piece = self._raw.read(VALUE_LIMIT * 4 - len(more))
            if not piece:
                break
            more += piece
        cut = more.find(b"\n")
        return prefix + data[start:] + (more[:cut] if cut >= 0 else more)

    def _line_of(self, data: bytes, pos: int) -> int:
        return self._nl + data.count(b"\n", 0, pos) + 1

    def _inspect(self, data: bytes) -> None:
        start = self._offset
        nul = data.find(b"\x00")
        if nul >= 0:
            line = self._line_of(data, nul)
            raise FileCheckError(
                Failure(BINARY, f"NUL byte at byte offset {start + nul} (line {line}): binary data, not a CSV text file",
                        [{"line": line, "value": _show(self._context(data, nul).replace(b"\x00", b"\\x00"))}])
            )
        if self._decoder_pending or not data.isascii():
            pending = self._decoder_pending
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError as err:
                pos = max(err.start - pending, 0)  # in this chunk (a character begun in the last one: 0)
                line = self._line_of(data, pos)
                raise FileCheckError(
                    Failure(NOT_UTF8,
                            f"not valid UTF-8 at byte offset {start - pending + err.start} (line {line}): {err.reason} "
                            f"(byte {err.object[err.start:err.end].hex(' ')}); Latin-1 or Windows-1252? Save the file as UTF-8",
                            [{"line": line, "value": _show(self._context(data, pos))}])
                ) from None
            self._decoder_pending = len(self._decoder.getstate()[0])
        self._check_cr(data, start)
        if b'"' in data or self._quote_parity:
            self._check_quotes(data)
        n_nl = data.count(b"\n")
        self._check_blank(data, n_nl)
        # Line bookkeeping.
        last_nl = data.rfind(b"\n")
        if last_nl >= 0:
            rest = data[last_nl + 1 :]
            self._tail = bytearray(rest[:TAIL_LIMIT])
            self._cur_len = len(rest)
            self._cur_is_cr = rest == b"\r"
        else:
            if len(self._tail) < TAIL_LIMIT:
                self._tail += data[: TAIL_LIMIT - len(self._tail)]
            self._cur_is_cr = self._cur_len == 0 and data == b"\r"
            self._cur_len += len(data)
        self._nl += n_nl
        self._offset += len(data)
        self.summary.size = self._offset

    def _check_cr(self, data: bytes, start: int) -> None:
        cr = data.count(b"\r")
        if not cr and not self._pending_cr:
            return
        crlf = data.count(b"\r\n")
        if self._pending_cr:
            if data.startswith(b"\n"):
                crlf += 1  # counted towards the previous chunk's trailing \r
            else:
                self._stray_cr(data, start, -1)
        ends_cr = data.endswith(b"\r")
        if cr - (1 if ends_cr else 0) != data.count(b"\r\n"):
            pos = 0
            while True:
                pos = data.find(b"\r", pos)
                if pos < 0 or pos == len(data) - 1:
                    break
                if data[pos + 1 : pos + 2] != b"\n":
                    self._stray_cr(data, start, pos)
                pos += 1
        self._pending_cr = ends_cr
        self.summary.crlf_lines += crlf

    def _stray_cr(self, data: bytes, start: int, pos: int) -> None:
        line = self._line_of(data, max(pos, 0))
        raise FileCheckError(
            Failure(STRAY_CR, f"carriage return not followed by a line feed at byte offset {start + pos} (line {line}): "
                    "only LF or CRLF line endings are accepted",
                    [{"line": line, "value": _show(self._context(data, max(pos, 0)).replace(b"\r", b"\\r"))}])
        )

    def _check_quotes(self, data: bytes) -> None:
        """Track quote parity per line; a line break inside quotes is a structural failure."""
        self.summary.quoted = self.summary.quoted or b'"' in data
        arr = np.frombuffer(data, dtype=np.uint8)
        quotes = np.flatnonzero(arr == 0x22)
        breaks = np.flatnonzero(arr == 0x0A)
        if breaks.size:
            open_at_break = ((np.searchsorted(quotes, breaks) + self._quote_parity) & 1).astype(bool)
            if open_at_break.any():
                first = int(np.argmax(open_at_break))
                self._quote_failure(data, breaks, open_at_break, first)
        self._quote_parity = (self._quote_parity + int(quotes.size)) & 1

    def _quote_failure(self, data, breaks, open_at_break, first) -> None:
        """A line break inside quotes at ``breaks[first]``: find where (whether) the field closes."""
        line = self._nl + first + 1
        example = [{"line": line, "value": _show(self._context(data, int(breaks[first]) - 1))}]
        closed = np.flatnonzero(~open_at_break[first:])
        if closed.size:
            close_line = line + int(closed[0])
        else:
            close_line = self._find_quote_close(data, line)
        if close_line is None:
            raise FileCheckError(
                Failure(UNBALANCED_QUOTE, f"line {line} opens a quoted field that is never closed (odd number of '\"'; "
                        "a stray quote inside an unquoted field counts too): the rows after it cannot be read", example)
            )
        raise FileCheckError(
            Failure(EMBEDDED_NEWLINE, f"a quoted field spans lines {line}-{close_line}: line breaks inside fields are "
                    "not accepted (Spark reads the lake line by line)", example)
        )

    def _find_quote_close(self, data: bytes, line: int) -> int | None:
        """Read on (checks only, nothing handed out) until a line break outside quotes, or the end."""
        parity = (self._quote_parity + data.count(b'"')) & 1
        seen = self._nl + data.count(b"\n")
        while True:
            chunk = self._raw.read(1 << 22)
            if not chunk:
                return None
            arr = np.frombuffer(chunk, dtype=np.uint8)
            quotes = np.flatnonzero(arr == 0x22)
            breaks = np.flatnonzero(arr == 0x0A)
            if breaks.size:
                inside = ((np.searchsorted(quotes, breaks) + parity) & 1).astype(bool)
                outside = np.flatnonzero(~inside)
                if outside.size:
                    return seen + int(outside[0]) + 1
            parity = (parity + int(quotes.size)) & 1
            seen += int(breaks.size)

    def _check_blank(self, data: bytes, n_nl: int) -> None:
        if not n_nl:
            return
        maybe = (
            b"\n\n" in data
            or b"\n\r\n" in data
            or (self._cur_len == 0 and data[:1] in (b"\n", b"\r"))
            or (self._cur_is_cr and data[:1] == b"\n")
        )
        if not maybe:
            self._last_nonblank = self._nl + n_nl
            return
        arr = np.frombuffer(data, dtype=np.uint8)
        breaks = np.flatnonzero(arr == 0x0A)
        lengths = np.diff(breaks, prepend=-1) - 1
        lengths[0] += self._cur_len
        before = np.where(breaks > 0, arr[np.maximum(breaks - 1, 0)], 0)
        cr_only = (lengths == 1) & (before == 0x0D)
        if self._cur_is_cr and breaks[0] == 0:
            cr_only[0] = True
        blank = (lengths == 0) | cr_only
        if self._nl == 0 and blank.size:
            blank[0] = False  # line 1 is the header (a blank header is reported by read_header)
        idx = np.flatnonzero(blank)
        if idx.size:
            self.summary.blank_count += int(idx.size)
            room = LINE_LIMIT_STORED - len(self._blank_all)
            if room > 0:
                self._blank_all.extend((self._nl + idx[:room] + 1).tolist())
        nonblank = np.flatnonzero(~blank)
        if nonblank.size:
            self._last_nonblank = self._nl + int(nonblank[-1]) + 1

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        s = self.summary
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            line = self._nl + 1
            raise FileCheckError(
                Failure(NOT_UTF8, f"not valid UTF-8: the file ends inside a multi-byte character (byte offset {self._offset - 1}, line {line})",
                        [{"line": line, "value": _show(bytes(self._tail))}])
            ) from None
        if self._pending_cr:
            line = self._nl + 1
            raise FileCheckError(
                Failure(STRAY_CR, f"the file ends with a carriage return not followed by a line feed (line {line})",
                        [{"line": line, "value": _show(bytes(self._tail)).replace("\r", "\\r")}])
            )
        if self._quote_parity:
            line = self._nl + 1
            raise FileCheckError(
                Failure(UNBALANCED_QUOTE, f"line {line} (the last line) opens a quoted field that is never closed",
                        [{"line": line, "value": _show(bytes(self._tail))}])
            )
        s.ends_with_newline = self._cur_len == 0
        s.lines = self._nl + (0 if s.ends_with_newline else 1)
        if not s.ends_with_newline:
            s.last_line = bytes(self._tail)
            s.last_line_complete = self._cur_len <= TAIL_LIMIT
            self._last_nonblank = s.lines
        s.blank_lines = [n for n in self._blank_all if n < self._last_nonblank]
        trailing = sum(1 for n in self._blank_all if n > self._last_nonblank)
        s.trailing_blank_lines = trailing
        s.blank_count -= trailing

    def _drain(self) -> None:
        """Run the checks over the rest of the file (nothing is handed out)."""
        self._buffer = b""
        while self._next(1 << 22):
            pass

    def drain(self) -> None:
        """Read to the end so every byte is checked and :attr:`summary` is final (may raise FileCheckError)."""
        self._alphabet_delete = None
        self._drain()


# --- helpers used by the runner --------------------------------------------------------------------


def parse_header(header: bytes) -> list[str]:
    """The column names of a header line (already checked to be UTF-8); CSV quoting is honoured."""
    text = header.decode("utf-8")
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        return [text]


def describe_header(found: list[str], expected: list[str]) -> str:
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    if len(set(found)) != len(found):
        parts.append("repeated column names")
    if not parts:
        parts.append("the right columns in the wrong order")
    return f"header {found} is not {expected}: " + "; ".join(parts)


def field_count(line: bytes) -> int:
    """Fields in one CSV line (quotes honoured); used for the unterminated last line."""
    text = line.decode("utf-8", errors="replace").rstrip("\r")
    try:
        return len(next(csv.reader([text])))
    except (csv.Error, StopIteration):
        return -1


def blank_line_failure(summary: ByteSummary) -> Failure:
    lines = summary.blank_lines[:MAX_EXAMPLES]
    return Failure(
        BLANK_LINE,
        f"{summary.blank_count} blank line(s) between data lines (first at line {lines[0]}); "
        "blank lines are only accepted at the end of the file",
        [{"line": n, "value": ""} for n in lines],
    )


def notes_for(summary: ByteSummary) -> list[str]:
    notes = []
    if summary.bom:
        notes.append("UTF-8 byte-order mark at the start: accepted and skipped (the file is kept as is; "
                     "readers must skip it too: pyarrow and pandas' utf-8-sig do)")
    if summary.crlf_lines:
        share = "all lines" if summary.crlf_lines >= summary.lines - (0 if summary.ends_with_newline else 1) else f"{summary.crlf_lines} of {summary.lines} lines"
        notes.append(f"CRLF (Windows) line endings on {share}: accepted (CSV readers strip the CR)")
    if summary.quoted:
        notes.append("quoted fields present: accepted as standard CSV quoting (RFC 4180)")
    if summary.trailing_blank_lines:
        notes.append(f"{summary.trailing_blank_lines} blank line(s) at the end of the file: accepted, ignored")
    return notes
