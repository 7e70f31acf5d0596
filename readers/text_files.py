"""Opening text files users hand us: which file, and which encoding (pure: no warehouse access).

Korean Excel saves CSVs as cp949 (a superset of EUC-KR), or as UTF-8 with a BOM. The
encoding is detected on a leading sample, so a file of any size is read as a stream; a
byte the detected codec cannot decode further on is reported by file, line and encoding.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from warehouse.errors import KicError

SAMPLE_BYTES = 1 << 20  # detection reads the first MiB
BLOCK_BYTES = 1 << 20  # locating a decode error reads the file a MiB at a time
# Tried in order on the sample; ASCII is valid in both, and then UTF-8 is the answer.
CANDIDATES = ("utf-8", "cp949")
UTF8_BOM = "utf-8-sig"


def check_file(path: Path) -> Path:
    """The path, if it names a readable file; else KicError saying what it names."""
    path = Path(path)
    if path.is_dir():
        raise KicError(f"{path}: is a directory, not a file (give the CSV file inside it)")
    if not path.exists():
        raise KicError(f"{path}: no such file")
    if not path.is_file():
        raise KicError(f"{path}: not a regular file")
    return path


def choose_encoding(path: Path, encoding: str | None = None) -> str:
    """The codec to read a file with: the one asked for (checked to exist) or the detected one."""
    if encoding is not None:
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise KicError(f"--encoding {encoding!r}: not an encoding Python knows (try utf-8 or cp949)") from None
    with open(path, "rb") as file:
        sample = file.read(SAMPLE_BYTES)
        whole = not file.read(1)
    if sample.startswith(codecs.BOM_UTF8):
        return UTF8_BOM
    for candidate in CANDIDATES:
        # Incremental, so a character cut by the sample's end is not taken for an error.
        try:
            codecs.getincrementaldecoder(candidate)().decode(sample, final=whole)
            return candidate
        except UnicodeDecodeError:
            continue
    raise KicError(f"{path}: neither UTF-8 nor cp949/EUC-KR text; give its encoding with --encoding")


def describe(encoding: str) -> str:
    """The encoding as the user knows it."""
    return {"utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8", "cp949": "cp949 (EUC-KR)"}.get(encoding, encoding)


def decode_error(path: Path, encoding: str) -> KicError:
    """A KicError naming the line of the first byte the encoding cannot decode.

    Only called once a read has failed: it reads the file again in blocks, counting newlines.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with open(path, "rb") as file:
        while block := file.read(BLOCK_BYTES):
            # The decoder may hold a few bytes of the previous block; errors count from them.
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line += block[: max(exc.start - pending, 0)].count(b"\n")
                return KicError(
                    f"{path}: line {line} is not valid {describe(encoding)} text"
                    f" (byte {exc.object[exc.start : exc.end]!r}); give the file's encoding with --encoding"
                )
            line += block.count(b"\n")
    return KicError(f"{path}: ends inside a {describe(encoding)} character; give the file's encoding with --encoding")
