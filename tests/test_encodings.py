"""Spreadsheets saved by Korean Excel: UTF-8 with or without BOM, cp949 / EUC-KR."""

import pytest

from readers.account_lists import read_account_list
from readers.study_csv import read_study_csv
from support import STUDY_HEADER
from warehouse.errors import KicError

HEADER = STUDY_HEADER + ",이름"
ROWS = [f"https://www.instagram.com/acct.{i}/,10,{1000 + i},5,1,0,30,2,0,0,0,0,뷰티 크리에이터 {i}" for i in range(3)]
HANGUL_ACCOUNT = "뷰티,10,1000,5,1,0,30,2,0,0,0,0,한글 계정"
# Python's name for the codec each encoding is read with (EUC-KR text is cp949 text).
DETECTED = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "cp949": "cp949", "euc-kr": "cp949"}


def write(tmp_path, lines, encoding, name="in.csv"):
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize("encoding", DETECTED)
def test_study_csv_in_each_encoding_is_read_with_its_hangul_intact(tmp_path, encoding):
    parsed = read_study_csv(write(tmp_path, [HEADER, *ROWS, HANGUL_ACCOUNT], encoding))
    assert parsed.encoding == DETECTED[encoding]
    assert list(parsed.accepted["username"]) == ["acct.0", "acct.1", "acct.2"]
    assert parsed.ignored_columns == ("이름",)
    assert list(parsed.rejected["content"]) == ["뷰티,10,1000,5,1,0,30,2,0,0,0,0"]
    assert list(parsed.rejected["line_number"]) == [5]


@pytest.mark.parametrize("encoding", DETECTED)
def test_account_list_in_each_encoding_is_read_with_its_hangul_intact(tmp_path, encoding):
    lines = ["account,이름", "@alpha,알파", "https://www.instagram.com/beta/,베타", "감마,감마"]
    listed = read_account_list(write(tmp_path, lines, encoding))
    assert listed.encoding == DETECTED[encoding]
    assert listed.usernames == ["alpha", "beta"]
    assert listed.invalid == [(4, "감마")]


def test_a_given_encoding_that_does_not_fit_names_file_line_and_encoding(tmp_path):
    ascii_rows = [row.split(",뷰티")[0] for row in ROWS]
    path = write(tmp_path, [HEADER.removesuffix(",이름"), *ascii_rows, HANGUL_ACCOUNT.split(",한글")[0]], "cp949")
    for read in (read_study_csv, read_account_list):
        with pytest.raises(KicError, match=r"in\.csv: line 5 is not valid UTF-8 text"):
            read(path, "utf-8")


def test_the_given_encoding_is_used(tmp_path):
    # Text that is valid in both: detection says UTF-8, the user says cp949.
    path = write(tmp_path, [HEADER, *ROWS], "cp949")
    assert read_study_csv(path, "cp949").ignored_columns == ("이름",)
    assert read_study_csv(path, "EUC-KR").encoding == "euc_kr"


def test_unknown_encodings_and_undecodable_files_are_named(tmp_path):
    path = write(tmp_path, [HEADER, *ROWS], "utf-8")
    with pytest.raises(KicError, match="--encoding 'klingon': not an encoding"):
        read_study_csv(path, "klingon")
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\xff\xd8\xff\xe0" * 10)
    with pytest.raises(KicError, match=r"photo\.csv: neither UTF-8 nor cp949"):
        read_account_list(binary)


def test_a_directory_is_named_as_one(tmp_path):
    for read in (read_study_csv, read_account_list):
        with pytest.raises(KicError, match="is a directory, not a file"):
            read(tmp_path)


def test_a_cp949_line_after_the_detection_sample_is_named_by_line(tmp_path):
    """Detection reads a leading sample (UTF-8 here, all ASCII); the Hangul after it is named."""
    header = HEADER.removesuffix(",이름")
    ascii_rows = [f"acct.{i},10,{1000 + i},5,1,0,30,2,0,0,0,0" for i in range(30_000)]  # > 1 MiB
    path = write(tmp_path, [header, *ascii_rows, HANGUL_ACCOUNT.split(",한글")[0]], "cp949")
    assert path.stat().st_size > 1 << 20
    with pytest.raises(KicError, match=r"line 30002 is not valid UTF-8 text.*--encoding"):
        read_study_csv(path)
    assert read_study_csv(path, "cp949").rejected["content"].tolist() == ["뷰티,10,1000,5,1,0,30,2,0,0,0,0"]
