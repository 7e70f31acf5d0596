"""Reading lists of accounts: the study's account CSV, or plain lists of names or URLs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from readers.text_files import check_file, choose_encoding, decode_error
from scrapers.usernames import normalize_account
from warehouse.errors import KicError

NAME_COLUMNS = ("account", "username", "url", "profile_url", "0")


@dataclass(frozen=True)
class AccountList:
    usernames: list[str]  # in file order, each once
    invalid: list[tuple[int, str]]  # (line number, value)
    duplicates: int
    encoding: str = "utf-8"  # the codec the file was read with


def read_account_list(path: Path, encoding: str | None = None) -> AccountList:
    """Usernames from a CSV with an account column (the study's file has it as column "0",
    after its saved index) or from a plain list, one username or profile URL per line.
    The encoding is detected (UTF-8 with or without BOM, cp949/EUC-KR) unless given."""
    path = check_file(path)
    encoding = choose_encoding(path, encoding)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError:
        raise decode_error(path, encoding) from None
    rows = list(csv.reader(text.splitlines()))
    if not any(any(cell.strip() for cell in row) for row in rows):
        raise KicError(f"{path}: the file is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in NAME_COLUMNS if name in header), None)
    first_line = 2 if column is not None else 1
    body = rows[1:] if column is not None else rows
    usernames: dict[str, None] = {}
    invalid, duplicates = [], 0
    for number, row in enumerate(body, start=first_line):
        cells = [cell.strip() for cell in row]
        value = cells[column] if column is not None and column < len(cells) else (cells[-1] if cells else "")
        if not value:
            continue
        username = normalize_account(value)
        if username is None:
            invalid.append((number, value))
        elif username in usernames:
            duplicates += 1
        else:
            usernames[username] = None
    if not usernames:
        raise KicError(f"{path}: no Instagram usernames or profile URLs found")
    return AccountList(list(usernames), invalid, duplicates, encoding)
