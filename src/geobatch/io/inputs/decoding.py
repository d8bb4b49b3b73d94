"""Byte-level input decoding: gzip detection and decompression, strict UTF-8 text and lines."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Final

from geobatch.io.inputs.common import InputError, InputSpec

_BLOCK: Final = 1 << 20


def sniff_gzip(first_bytes: bytes) -> bool:
    """True when the bytes start with the gzip magic number, whatever the upload claimed."""
    return first_bytes[:2] == b"\x1f\x8b"


class _GzipReader(gzip.GzipFile):
    """A gzip stream whose damage surfaces as InputError, not as zlib or EOF errors."""

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except EOFError:
            raise InputError(
                "truncated_gzip",
                f"gzip input ends before its end-of-stream marker (after {self.tell()} "
                "decompressed bytes); the upload is probably truncated",
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise InputError("bad_gzip", f"gzip input is corrupt ({exc})") from None

    def read(self, size: int | None = -1) -> bytes:
        with self._errors():
            return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        with self._errors():
            return super().read1(size)

    def readline(self, size: int | None = -1) -> bytes:
        with self._errors():
            return super().readline(size)


def open_decompressed(source: BinaryIO, spec: InputSpec) -> BinaryIO:
    """Return a reader of the decompressed input; gzip is detected by its magic bytes too."""
    start = source.tell()
    magic = source.read(2)
    source.seek(start)
    if sniff_gzip(magic):
        return _GzipReader(fileobj=source, mode="rb")  # type: ignore[return-value]
    if spec.gzip and magic:
        raise InputError(
            "bad_gzip", "input is declared gzip-compressed but does not start with bytes 1f 8b"
        )
    return source


class _Utf8Blocks:
    """Strict UTF-8 decoding block by block that names the offset and line of a bad byte."""

    def __init__(self, stream: BinaryIO, *, final: bool = True) -> None:
        self._stream = stream
        self._final = final  # False: the bytes are a window, a cut character at the end is fine
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._offset = 0
        self._lines = 0
        self._started = False
        self._done = False
        self._failure: InputError | None = None

    def read(self) -> str:
        """Next block of text without a leading BOM; "" at the end.

        A bad byte raises only once the text before it has been returned, so every record
        before the bad one is read.
        """
        if self._failure is not None:
            raise self._failure
        while not self._done:
            data = self._stream.read(_BLOCK)
            self._done = not data
            pending = self._decoder.getstate()[0]
            try:
                text = self._decoder.decode(data, final=self._done and self._final)
            except UnicodeDecodeError as exc:
                self._failure = self._error(exc, len(pending))
                self._done = True
                text = exc.object[: exc.start].decode("utf-8")
            self._offset += len(data)
            self._lines += data.count(b"\n")
            if text and not self._started:
                self._started = True
                text = text.removeprefix("\ufeff")
            if text:
                return text
        if self._failure is not None:
            raise self._failure
        return ""

    def _error(self, exc: UnicodeDecodeError, pending: int) -> InputError:
        data = exc.object  # the decoder's pending bytes followed by this block
        line = self._lines + data.count(b"\n", 0, exc.start) + 1
        offset = self._offset - pending + exc.start
        if exc.reason == "unexpected end of data":
            where = f"offset {offset}, line {line}"
            return InputError("bad_encoding", f"input ends inside a UTF-8 character ({where})")
        where = f"byte 0x{data[exc.start]:02x} at offset {offset}, line {line}"
        return InputError("bad_encoding", f"input is not valid UTF-8 ({where})")


class _Lines:
    """The decoded text as lines with their endings (\\n, \\r\\n or \\r), as csv.reader wants.

    Iterating gives one line at a time; ``pieces`` gives the rest of the text in large pieces
    that each end at a line end (the last one may not), for readers that parse many lines at
    once. Both may be used in turn: each picks up exactly where the other stopped.
    """

    def __init__(self, blocks: _Utf8Blocks) -> None:
        self._blocks = blocks
        self._buffer = io.StringIO("", newline="")
        self._tail: list[str] = []  # text after the last line end of the blocks read so far
        self._end = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        while True:
            line = self._buffer.readline()
            if line:
                return line
            piece = self._next_piece()
            if piece is None:
                raise StopIteration
            self._buffer = io.StringIO(piece, newline="")

    def pieces(self) -> Iterator[str]:
        """The rest of the text, in pieces that end at a line end."""
        rest = self._buffer.read()
        if rest:
            yield rest
        while (piece := self._next_piece()) is not None:
            yield piece

    def _next_piece(self) -> str | None:
        while not self._end:
            text = self._blocks.read()
            if not text:
                self._end = True
                break
            cut = max(text.rfind("\n"), text.rfind("\r")) + 1
            if not cut:
                self._tail.append(text)
                continue
            piece = "".join([*self._tail, text[:cut]])
            self._tail = [text[cut:]] if cut < len(text) else []
            return piece
        if self._tail:
            piece, self._tail = "".join(self._tail), []
            return piece
        return None
