"""What every export reader shares: its result, the request sink, text decoding.

A reader turns one tool's files into an :class:`Ingested`: the canonical tables it can
fill (see :mod:`perflab.store`), the run's metadata and the caveats met on the way.
Per-request rows go through a :class:`RequestSink`, which writes them to Parquet in
chunks so a file larger than memory can be streamed. Tables the reader leaves empty are
derived from the requests afterwards by :mod:`perflab.ingest`.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import io
import logging
import os
import re
import sys
import threading
import time
import unicodedata
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from perflab.errors import DataWarning, InputError
from perflab.store import SCHEMAS, to_arrow

log = logging.getLogger(__name__)


@dataclass
class Ingested:
    """What a reader made of a set of files.

    Attributes
    ----------
    tool, tool_version
        The load generator (``locust``, ``k6``, ``jmeter``, ``gatling``) and its version
        when the files tell it (else a best guess ending in ``?``, or None).
    fmt
        The export format read, for example ``locust-csv`` or ``k6-json``.
    files
        The files the reader consumed; they are copied to the run's ``raw/`` untouched.
    intervals, endpoints, errors, resources
        Canonical tables the tool itself provides (None when absent). Leave a table None
        when it should be derived from the requests.
    provenance
        Per table, ``(provenance, note)``: ``("aggregate", "Locust rounds ...")``.
    meta
        Fields for ``run.json``: ``start``, ``end`` (UTC timestamps), ``duration_s``,
        ``peak_users``, ``scenario``, ``host``, ``stages``, ``thresholds`` ...
        ``guessed_encodings`` (file name: codec) is filled in by
        :func:`detect_encoding` for the files whose encoding it guessed.
    warnings
        Caveats to show in the report (each one has also been issued as a warning).
    """

    tool: str
    fmt: str
    tool_version: str | None = None
    files: list[Path] = field(default_factory=list)
    intervals: pd.DataFrame | None = None
    endpoints: pd.DataFrame | None = None
    errors: pd.DataFrame | None = None
    resources: pd.DataFrame | None = None
    provenance: dict[str, tuple[str, str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str, category: type[Warning] = DataWarning) -> None:
        """Issue a caveat as a warning and keep it for run.json and the report."""
        warnings.warn(message, category, stacklevel=2)
        if message not in self.warnings:
            self.warnings.append(message)

    def __post_init__(self) -> None:
        _register(self)  # to be told of the text encodings guessed for its files

    def _note_encoding(self, path: Path, encoding: str, message: str) -> None:
        """Keep the warning about a guessed encoding and the guess for run.json."""
        if message not in self.warnings:
            self.warnings.append(message)
        self.meta.setdefault("guessed_encodings", {})[Path(path).name] = encoding


class RequestSink:
    """Collects per-request rows and writes them to a Parquet file in chunks.

    Readers call :meth:`append` with DataFrames holding the canonical ``requests``
    columns (timestamps as UTC, latency in milliseconds). Rows are buffered and written
    every ``chunk_rows`` rows, so memory stays bounded whatever the file size.
    """

    def __init__(self, path: Path, chunk_rows: int = 500_000):
        self.path = Path(path)
        self.chunk_rows = chunk_rows
        self.rows = 0
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def append(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        self._pending.append(frame)
        self._pending_rows += len(frame)
        if self._pending_rows >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        chunk = pd.concat(self._pending, ignore_index=True)
        self._pending, self._pending_rows = [], 0
        table = to_arrow("requests", chunk)
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path, SCHEMAS["requests"], compression="zstd"
            )
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> int:
        """Write what is pending and close the file; returns the number of rows."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.rows


# -- DuckDB ---------------------------------------------------------------------------

#: Memory DuckDB may hold for its own work (sorts and aggregates spill beyond it), so
#: that a whole ingest stays within 1 GiB of resident memory with Python, pandas and
#: Arrow beside it.
DUCKDB_MEMORY_LIMIT = "500MB"

#: Files larger than this show a progress bar on a terminal.
PROGRESS_BYTES = 50 * 2**20


def duckdb_connection(workdir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set up for ingesting.

    Its memory is capped at :data:`DUCKDB_MEMORY_LIMIT`; work that does not fit
    spills to ``workdir/.duckdb-tmp`` (the caller removes it). Times are UTC, and
    insertion order is preserved, which the fast paths rely on: a query without
    ``ORDER BY`` over one CSV file yields its rows in file order.
    """
    con = duckdb.connect(config={"threads": os.cpu_count() or 1})
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{_sql_text(workdir / '.duckdb-tmp')}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    return con


def _sql_text(value: Path | str) -> str:
    return str(value).replace("'", "''")


def sql_path(path: Path | str) -> str:
    """A file path as a quoted SQL string literal."""
    return f"'{_sql_text(path)}'"


def progress_bar(path: Path, desc: str | None = None, total: int | None = None):
    """A tqdm bar on stderr for work on a large file, or None.

    Parameters
    ----------
    path
        The file; its size decides whether a bar is shown.
    desc
        The bar's label; the file name when None.
    total
        What the bar counts to: the file's size in bytes when None (then the bar
        shows bytes), else a number of steps.

    Returns
    -------
    tqdm or None
        None for files smaller than :data:`PROGRESS_BYTES`, and when stderr is not
        a terminal: a log file or a pipe gets no carriage-return animation.
    """
    size = path.stat().st_size
    if size < PROGRESS_BYTES or not _stderr_is_terminal():
        return None
    from tqdm import tqdm

    if total is None:
        return tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=desc or path.name,
            file=sys.stderr,
            leave=False,
        )
    return tqdm(
        total=total,
        desc=desc or path.name,
        file=sys.stderr,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
    )


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def execute(
    con: duckdb.DuckDBPyConnection, sql: str, progress=None, share: float = 1.0
) -> None:
    """Run one statement; advance ``progress`` by ``share`` of its total meanwhile.

    DuckDB reports a running query's progress (0-100 %); the statement runs on a
    worker thread while this thread moves the bar. Interrupting (Ctrl-C) stops the
    query.
    """
    began = time.perf_counter()
    if progress is None:
        con.execute(sql).fetchall()
        log.debug("DuckDB %.2f s: %s", time.perf_counter() - began, sql[:60])
        return
    failure: list[BaseException] = []

    def work() -> None:
        try:
            con.execute(sql).fetchall()
        except BaseException as exc:  # handed to the calling thread
            failure.append(exc)

    begin = progress.n
    span = progress.total * share
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
            done = con.query_progress()
            if done >= 0:
                progress.update(max(begin + span * done / 100 - progress.n, 0))
    except KeyboardInterrupt:
        con.interrupt()
        worker.join()
        raise
    progress.update(max(begin + span - progress.n, 0))
    if failure:
        raise failure[0]
    log.debug("DuckDB %.2f s: %s", time.perf_counter() - began, sql[:60])


# -- reading text ---------------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: Path):
    """Open a file for reading bytes, transparently un-gzipping it."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")
    return open(path, "rb")


def head_bytes(path: Path, size: int = 65536) -> bytes:
    """The first bytes of a file (after un-gzipping), for format detection."""
    with open_binary(path) as handle:
        return handle.read(size)


def detect_encoding(path: Path, sample_size: int = 1 << 20) -> str:
    """Guess a text file's encoding from its first ``sample_size`` bytes.

    A byte-order mark settles it: UTF-8 (returned as ``utf-8-sig``, so that the BOM
    never reaches the first column name), UTF-16 or UTF-32. Bytes that are valid
    UTF-8 (plain ASCII included) are UTF-8. Anything else is a guess among
    candidate encodings: GB18030 (a superset of GBK), cp1252 (a superset of
    Latin-1's letters), CP949 (Korean), cp932 (Japanese) and the best few guesses
    of ``charset_normalizer``. Each candidate that decodes the bytes is scored by
    how plausible its text is (see :func:`_plausibility`), and the best one is
    taken. Readings that score within :data:`_TIE` of the best are told apart
    by evidence, then by preference. A Korean or Japanese reading wins when it
    shows at least :data:`_EVIDENCE` distinct characters that other bytes rarely
    turn into by chance (see :class:`_Family`); otherwise GB18030 wins, the
    usual case (load generators write in their machine's code page, GBK on a
    Chinese-locale Windows), then cp1252, CP949, cp932, then the detector's
    guesses in its own order. So Japanese written in kanji only, or a Korean
    name of a syllable or two, is read as GB18030 when it is valid GBK.

    A guess is not a certainty: a short Korean name can be valid GBK, and text in
    a Western code page other than cp1252 reads as cp1252. So every guessed
    encoding other than UTF-8 is reported with a :class:`~perflab.errors.
    DataWarning` naming the file and the encoding, recorded in ``run.json``
    (``warnings`` and ``guessed_encodings``) by the :class:`Ingested` result
    that reads the file. Give the encoding (``--encoding``) when the guess is
    wrong.

    Returns a Python codec name.

    Raises
    ------
    InputError
        When no encoding fits the bytes.
    """
    with open_binary(path) as handle:
        sample = handle.read(sample_size)
    settled = _settled_encoding(sample, sample_size)
    if settled is not None:
        return settled
    key = _key(path)
    stamp = hashlib.blake2b(sample, digest_size=16).digest()
    known = _guesses.recent.get(key)
    if known is not None and known[0] == stamp:  # read again, as by a fast path
        _, encoding, message = known
    else:
        readings = _readings(sample, whole=len(sample) < sample_size)
        if not readings:
            raise InputError(
                "The file's text encoding could not be recognised; give it with "
                "--encoding (for example --encoding gbk or --encoding latin-1).",
                path,
            )
        chosen = _choose(readings)
        log.info(
            "%s: text encoding guessed as %s (%s)",
            path,
            chosen.encoding,
            ", ".join(f"{r.encoding} {r.score:.2f}" for r in readings),
        )
        encoding, message = chosen.encoding, _guess_message(path, chosen)
        _guesses.recent[key] = (stamp, encoding, message)
        _trim(_guesses.recent)
    if not _reported(key, message):
        warnings.warn(message, DataWarning, stacklevel=2)
    _hand_over(key, encoding, message)
    return encoding


def plain_encoding(path: Path, sample_size: int = 1 << 20) -> str | None:
    """The encoding of a file when no guess is needed, else None.

    A byte-order mark or bytes that are valid UTF-8 settle it, as in
    :func:`detect_encoding`; None stands for a file whose encoding would be
    guessed. Nothing is reported: a fast path that reads only UTF-8 asks this
    of a file it may decline, and the reader it hands the file to guesses and
    warns, naming the file it reads.
    """
    with open_binary(path) as handle:
        return _settled_encoding(handle.read(sample_size), sample_size)


def _settled_encoding(sample: bytes, sample_size: int) -> str | None:
    """The encoding a BOM or valid UTF-8 gives the first bytes of a file, or None."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is not an error.
        if exc.start >= len(sample) - 3 and len(sample) == sample_size:
            return "utf-8"
    return None


_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    # Before UTF-16: the UTF-32 little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

#: Encodings always tried when the bytes are not UTF-8, in order of preference.
_CANDIDATES = ("gb18030", "cp1252", "cp949", "cp932")

#: How many of charset_normalizer's guesses are tried besides.
_DETECTOR_GUESSES = 3

#: Readings whose scores differ by less than this are equally plausible.
_TIE = 0.02

#: Distinct evidence characters (see :class:`_Family`) a Korean or Japanese
#: reading needs to win a tie with GB18030. Chinese text reads as Korean with 3
#: distinct open syllables (and no Chinese character) less than once in 300.
_EVIDENCE = 3

#: A best score below this makes the guess an uncertain one (said in the warning).
_UNCERTAIN = 0.8

#: Non-ASCII characters scored per reading, at most (for speed).
_SCORED_CHARS = 10_000

#: Human names of the candidates, for the warning.
_LANGUAGES = {
    "gb18030": "Chinese GBK/GB18030",
    "cp1252": "Western European Windows-1252/Latin-1",
    "cp949": "Korean",
    "cp932": "Japanese Shift JIS",
}


@dataclass(frozen=True)
class _Family:
    """What the text of an encoding's language looks like.

    ``scripts`` are the scripts of its letters (empty for the alphabetic,
    single-byte code pages, whose letters are judged by word shape); ``core`` is
    the codec of the national standard a multi-byte code page extends, whose
    characters are the common ones; ``evidence`` tells the characters that are
    evidence for the language, being what other bytes rarely turn into.

    GBK bytes read as Han whatever they are, so Han is no evidence. Kana is: it
    comes from GBK bytes only by way of rare GBK characters. Hangul is, when it
    is Hangul without a final consonant: about 60% of the common Chinese
    characters have GBK codes that CP949 reads as Hangul, but only about 15% of
    those are open syllables, while about half of Korean syllables are.
    """

    scripts: frozenset[str] = frozenset()
    core: str | None = None
    evidence: Callable[[str], bool] | None = None


_ALPHABETIC = _Family()

#: Multi-byte East Asian code pages by codec name prefix.
_FAMILIES = {
    ("gb", "hz"): _Family(frozenset({"HAN", "FULLWIDTH"}), "gb2312"),
    ("big5", "cp950"): _Family(frozenset({"HAN", "FULLWIDTH"}), "big5"),
    ("cp949", "euc_kr", "johab", "iso2022_kr"): _Family(
        frozenset({"HANGUL", "FULLWIDTH"}), "euc_kr", lambda c: _open_syllable(c)
    ),
    ("cp932", "shift_jis", "euc_j", "iso2022_jp"): _Family(
        frozenset({"HAN", "KANA", "FULLWIDTH"}),
        "shift_jis",
        lambda c: _script(c) == "KANA",
    ),
}

_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\t\r\n"


@dataclass
class _Reading:
    """One candidate encoding's reading of the sample, and how plausible it is."""

    encoding: str
    family: _Family
    preference: int
    score: float = 0.0
    evidence: int = 0


def _family(encoding: str) -> _Family:
    name = codecs.lookup(encoding).name.replace("-", "_")
    for prefixes, family in _FAMILIES.items():
        if name.startswith(prefixes):
            return family
    return _ALPHABETIC


def _readings(sample: bytes, whole: bool) -> list[_Reading]:
    """The candidate encodings that decode ``sample``, each scored."""
    from charset_normalizer import from_bytes

    guesses = [match.encoding for match in from_bytes(sample)][:_DETECTOR_GUESSES]
    readings: list[_Reading] = []
    seen: set[str] = set()
    for encoding in (*_CANDIDATES, *guesses):
        try:
            info = codecs.lookup(encoding)
        except LookupError:
            continue
        if info.name in seen:
            continue
        seen.add(info.name)
        try:
            if _PRINTABLE_ASCII.decode(encoding) != _PRINTABLE_ASCII.decode("ascii"):
                continue  # not a superset of ASCII (UTF-16, EBCDIC, UTF-7 ...)
            # Not final unless whole: a character cut by the end of the sample.
            decoder = codecs.getincrementaldecoder(encoding)()
            text = decoder.decode(sample, final=whole)
        except (UnicodeDecodeError, ValueError):
            continue
        reading = _Reading(encoding, _family(encoding), len(readings))
        reading.score, reading.evidence = _plausibility(text, reading.family)
        readings.append(reading)
    return readings


def _choose(readings: list[_Reading]) -> _Reading:
    """The most plausible reading; on a tie, the best evidenced, then preferred."""
    best = max(r.score for r in readings)
    tied = [r for r in readings if r.score >= best - _TIE]

    def rank(reading: _Reading) -> tuple[bool, int]:
        return (reading.evidence < _EVIDENCE, reading.preference)

    return min(tied, key=rank)


def _plausibility(text: str, family: _Family) -> tuple[float, int]:
    """How plausible ``text`` is as text in an encoding of ``family``.

    Returns the share of its non-ASCII characters that are plausible, and the
    number of distinct plausible characters that are evidence for the family
    (see :class:`_Family`).

    A character is plausible when it is of a script the encoding's language is
    written in and sits where such characters sit in real text:

    * East Asian code pages: a character of the language's scripts (Han for
      Chinese, Hangul for Korean, kana and Han for Japanese) that belongs to the
      national standard the code page extends (GB 2312, KS X 1001, JIS X 0208):
      characters outside it are rare, and they are what other bytes turn into.
      One such letter alone between ASCII letters is not plausible: it is how
      Latin-1 text reads in a double-byte code page, where an accented letter
      and the ASCII letter after it make one character (``Pa駉`` for ``Paño``).
      Punctuation and symbols of the standard are plausible.
    * Alphabetic code pages: a Latin letter with diacritics inside a word that
      also has ASCII letters, in a run of at most 3 such letters, not an upper
      case letter after a lower case one (``Inscrição``, ``Größe``); a letter
      of another alphabet in a word of at least 2 letters of that alphabet; a
      symbol or punctuation mark next to no other non-ASCII symbol. GBK bytes
      read in a Western code page give runs of accented capitals and symbols
      without ASCII letters (``½Ó¿Ú`` for ``接口``), which are not plausible.

    Control, private-use and unassigned characters are never plausible.
    """
    good = total = 0
    evident: set[str] = set()
    for island in _NON_ASCII.finditer(text):
        start, end = island.span()
        run = island.group()
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        for i, char in enumerate(run):
            total += 1
            if family.core is None:
                ok = _alphabetic_ok(run, i, before, after)
            else:
                ok = _east_asian_ok(run, i, before, after, family)
            if ok:
                good += 1
                if family.evidence is not None and family.evidence(char):
                    evident.add(char)
        if total >= _SCORED_CHARS:
            break
    return (good / total if total else 1.0), len(evident)


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")

#: Categories never plausible in text: controls, format, surrogates, private use,
#: unassigned, modifier symbols (spacing accents such as ``¨``, ``¯``, ``´``).
_IMPLAUSIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Sk"})


def _east_asian_ok(run: str, i: int, before: str, after: str, family: _Family) -> bool:
    char = run[i]
    category = unicodedata.category(char)
    if category in _IMPLAUSIBLE or not _in_standard(char, family.core):
        return False
    if category[0] != "L":
        return True  # punctuation and symbols of the standard
    if _script(char) not in family.scripts:
        return False
    glued = _ascii_letter(before) or _ascii_letter(after)
    return not (len(run) == 1 and glued)


def _alphabetic_ok(run: str, i: int, before: str, after: str) -> bool:
    char = run[i]
    category = unicodedata.category(char)
    if category in _IMPLAUSIBLE:
        return False
    previous = run[i - 1] if i else before
    if category[0] == "M":  # a combining accent follows a letter
        return previous.isalpha()
    if category[0] != "L":
        neighbours = (run[i - 1] if i else "", run[i + 1] if i + 1 < len(run) else "")
        return not any(c and not c.isalpha() for c in neighbours)
    if char.isupper() and previous.islower():
        return False
    first = last = i  # the non-ASCII letters around this one
    while first and _letter(run[first - 1]):
        first -= 1
    while last + 1 < len(run) and _letter(run[last + 1]):
        last += 1
    word = run[first : last + 1]
    script = _script(char)
    if any(_script(c) != script for c in word if c.isalpha()):
        return False
    touches_ascii = (first == 0 and _ascii_letter(before)) or (
        last == len(run) - 1 and _ascii_letter(after)
    )
    if script == "LATIN":
        return touches_ascii and len(word) <= 3
    return not touches_ascii and len(word) >= 2


def _open_syllable(char: str) -> bool:
    """Whether ``char`` is a Hangul syllable without a final consonant."""
    offset = ord(char) - 0xAC00
    return 0 <= offset < 11172 and offset % 28 == 0


def _letter(char: str) -> bool:
    return unicodedata.category(char)[0] in "LM"


def _ascii_letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


@functools.lru_cache(maxsize=8192)
def _script(char: str) -> str:
    """The script of a letter, from its Unicode name: LATIN, HAN, HANGUL, KANA ..."""
    if char <= "\u00ff" and char.isalpha():  # with ª, µ and º of Latin-1
        return "LATIN"
    name = unicodedata.name(char, "")
    if name.startswith(("CJK ", "IDEOGRAPHIC ")):
        return "HAN"
    if name.startswith(("HIRAGANA ", "KATAKANA")):
        return "KANA"
    return name.split(" ", 1)[0]


@functools.lru_cache(maxsize=8192)
def _in_standard(char: str, core: str | None) -> bool:
    """Whether ``char`` is one double-byte character of the codec ``core``."""
    if core is None:
        return True
    try:
        return len(char.encode(core)) == 2
    except UnicodeEncodeError:
        return False


# -- reporting a guess -----------------------------------------------------------------


class _Guesses(threading.local):
    """Encoding guesses on their way into the results that read the files.

    :func:`detect_encoding` does not know the :class:`Ingested` result it reads
    for; each result registers here when made, and a guess goes to the live
    results that list the file, or waits (``pending``) for the one made next.
    ``recent`` keeps the last guesses, so that a file read twice (a fast path
    that declines it, then the streaming reader) is guessed once; it is warned
    of once as long as the guess is pending or held by a result.
    Per thread, as one ingest runs on one thread.
    """

    def __init__(self) -> None:
        self.results: list[weakref.ref[Ingested]] = []
        self.pending: dict[Path, tuple[str, str]] = {}
        self.recent: dict[Path, tuple[bytes, str, str]] = {}


_guesses = _Guesses()

#: Guesses kept, at most, waiting for their result and as recent ones.
_KEPT = 64


def _register(result: Ingested) -> None:
    _guesses.results = [ref for ref in _guesses.results if ref() is not None]
    _guesses.results.append(weakref.ref(result))
    for path in result.files:
        guess = _guesses.pending.pop(_key(path), None)
        if guess is not None:
            result._note_encoding(path, *guess)


def _guess_message(path: Path, reading: _Reading) -> str:
    """The warning that an encoding was guessed, naming file and encoding."""
    encoding = reading.encoding
    language = _LANGUAGES.get(encoding)
    named = f"{encoding} ({language})" if language else encoding
    doubt = (
        " The guess is uncertain: no encoding tried gives plausible text."
        if reading.score < _UNCERTAIN
        else ""
    )
    return (
        f"{path}: the file is not UTF-8; its text encoding was guessed to be "
        f"{named}.{doubt} If names or messages look wrong, give the encoding with "
        "--encoding."
    )


def _owners(key: Path) -> list[Ingested]:
    """The live results that read the file."""
    return [
        result
        for ref in _guesses.results
        if (result := ref()) is not None and key in {_key(p) for p in result.files}
    ]


def _reported(key: Path, message: str) -> bool:
    """Whether this ingest was already warned of the guess (the file read twice)."""
    pending = _guesses.pending.get(key)
    if pending is not None and pending[1] == message:
        return True
    return any(message in result.warnings for result in _owners(key))


def _hand_over(key: Path, encoding: str, message: str) -> None:
    """Give a guess to the live results that read the file, else keep it."""
    owners = _owners(key)
    for result in owners:
        result._note_encoding(key, encoding, message)
    if not owners:
        _guesses.pending[key] = (encoding, message)
        _trim(_guesses.pending)


def _trim(kept: dict) -> None:
    while len(kept) > _KEPT:
        del kept[next(iter(kept))]


def _key(path: Path | str) -> Path:
    return Path(os.path.abspath(path))


def open_text(path: Path, encoding: str | None = None) -> io.TextIOBase:
    """Open a (possibly gzipped) text file with a given or detected encoding.

    Undecodable bytes raise an :class:`InputError` when read, never turn into ``?``.
    """
    encoding = encoding or detect_encoding(path)
    return io.TextIOWrapper(open_binary(path), encoding=encoding, newline="")


def read_text(path: Path, encoding: str | None = None) -> tuple[str, str]:
    """Read a whole text file; returns ``(text, encoding used)``."""
    encoding = encoding or detect_encoding(path)
    try:
        with open_text(path, encoding) as handle:
            return handle.read(), encoding
    except UnicodeDecodeError as exc:
        raise InputError(
            f"The file is not valid {encoding} text (byte {exc.start}); give its "
            "encoding with --encoding.",
            path,
        ) from exc
