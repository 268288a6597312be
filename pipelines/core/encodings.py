"""Which text encoding a CSV is in: the spec's `encoding`, else detected from its bytes.

`choose_encoding(path, where, given)` returns the codec `read_csv` hands to pandas:
- UTF-16 or UTF-32, with a byte-order mark (what Excel's "Unicode text" and PowerShell write)
  or without one (told by where the zero bytes of ASCII characters fall), given or detected;
- UTF-8, with or without a byte-order mark (`utf-8-sig` drops the mark from the first name);
- else the first of `FALLBACK_ENCODINGS` that decodes the whole file, said in the log
  (Kaggle's older text sets are cp1252 or latin-1).
A spec's encoding that the bytes plainly contradict (UTF-16 text declared latin-1) is an
error naming the file and the key; one that merely fails to decode is named by `read_csv`.
"""

from __future__ import annotations

import codecs
import logging
from pathlib import Path

from pipelines.core.errors import PipelineError

log = logging.getLogger(__name__)

# tried in order when a file is not UTF-8: cp1252 (Windows' Western) decodes what latin-1 does
# but five bytes, and reads 0x80-0x9f as the curly quotes and dashes such files hold
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
UTF8_BOM = codecs.BOM_UTF8
BOMS = (  # longest first: UTF-32-LE's mark begins with UTF-16-LE's
    (codecs.BOM_UTF32_LE, "utf-32", "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32", "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16", "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16", "utf-16-be"),
)
WIDE = ("utf-16", "utf-32")  # codec families whose text holds zero bytes


def _family(encoding: str) -> str:
    name = codecs.lookup(encoding).name  # "UTF16" -> "utf-16", "latin1" -> "iso8859-1"
    return next((w for w in WIDE if name.startswith(w)), name)


def wide_encoding(head: bytes) -> tuple[str, str] | None:
    """(codec for pandas, codec for a slice of the file) of UTF-16/32 text, else None: told by
    its byte-order mark, or by ASCII's zero bytes falling on every other byte (UTF-16 without
    a mark; its first characters, a header, are nearly always ASCII)."""
    for bom, family, plain in BOMS:
        if head.startswith(bom):
            return family, plain
    even, odd = head[0 : len(head) // 2 * 2 : 2], head[1 : len(head) // 2 * 2 : 2]
    if len(even) < 2:
        return None
    for zeros, others, plain in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if zeros.count(0) >= 0.6 * len(zeros) and others.count(0) <= 0.05 * len(others):
            return plain, plain
    return None


def plain_codec(encoding: str, head: bytes) -> str:
    """The codec that decodes any aligned slice of the file (no byte-order mark expected)."""
    wide = wide_encoding(head)
    if wide and _family(encoding) == _family(wide[0]):
        return wide[1]
    return "utf-8" if _family(encoding) == "utf-8" else encoding


def choose_encoding(path: Path, where, given: str | None, head: bytes) -> str:
    """The codec to read `path` with (`head`: its first bytes); `where` names it in errors."""
    wide = wide_encoding(head)
    if given is not None:
        family = _family(given)
        if wide and family != _family(wide[0]):
            raise PipelineError(
                f"{where}: {_family(wide[0]).upper()} text, but the spec's encoding is {given} "
                f"(set 'encoding: {_family(wide[0])}' or leave it out to detect it)"
            )
        if family in WIDE and not wide:
            raise PipelineError(f"{where}: not {given} text (no byte-order mark, no zero bytes as {family} holds)")
        if codecs.lookup(given).name in WIDE:
            return wide[0]  # plain "utf-16": the byte order its mark, or its zero bytes, tell
        return "utf-8-sig" if family == "utf-8" and head.startswith(UTF8_BOM) else given
    if wide:
        return wide[0]
    if b"\x00" in head:
        raise PipelineError(f"{where}: binary data, not CSV text")
    return _detect_narrow(path, where)


def _detect_narrow(path: Path, where) -> str:
    """utf-8-sig when the whole file decodes as UTF-8, else the first fallback that decodes it."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    why = first_undecodable(path, "utf-8")
    for encoding in FALLBACK_ENCODINGS:
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        log.warning("%s: not UTF-8 (%s); read as %s (set the spec's 'encoding' to choose)", where, why, encoding)
        return encoding
    return "utf-8"  # unreachable (latin-1 decodes any byte); kept so the reader names the byte


def first_undecodable(path: Path, encoding: str) -> str:
    """Where `path` stops decoding as `encoding`: the byte and its line."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].decode(encoding, errors="replace").count("\n") + 1
        return f"byte {data[err.start]:#04x} at line {line}: {err.reason}"
    return "undecodable bytes"
