"""Property-based cases for the pair-file parsers: whatever bytes a user's pair list
holds, a reader returns a checked pair table or raises one PairFormatError (never
another exception, never a silently wrong table); what a writer writes reads back to
the same pairs. Bounded: few examples, a deadline per example."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrkit.protocols.errors import PairFormatError
from mfrkit.protocols.formats.base import FORMATS, check_pair_table

BOUNDED = settings(max_examples=60, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
TEXT_FORMATS = [n for n in FORMATS.names() if FORMATS.get(n).reader is not None and not FORMATS.get(n).embeds_images]

# Lines built from the tokens pair lists are made of, so the parsers get past their first
# check often (random bytes alone are refused at once).
_token = st.one_of(st.sampled_from(["0", "1", "2", "10", "-1", "1e9", "nan", "Aaron_Peirsol", "a/b.jpg", "x.png",
                                    "left,right,label", "fold", "", " ", "\t", ",", "\"", "=1+1"]),
                   st.text(min_size=0, max_size=12))
_text = st.lists(st.tuples(st.lists(_token, max_size=6), st.sampled_from(["\t", " ", ","])), max_size=12).map(
    lambda lines: "\n".join(sep.join(tokens) for tokens, sep in lines))


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@BOUNDED
@given(data=st.one_of(_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200)))
def test_a_reader_returns_a_checked_table_or_one_clear_error(fmt, data):
    reader = FORMATS.get(fmt).reader
    try:
        table = reader(data, source="pairs.txt")
    except PairFormatError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    check_pair_table(table)  # a table that comes back is a valid one
    assert set(table["label"].unique()) <= {0, 1}
    assert (table["left"].astype(str).str.len() > 0).all() and (table["right"].astype(str).str.len() > 0).all()


# "/" left out: a reference is a normalised relative path ("p//x.jpg" reads back as "p/x.jpg")
_name = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=",\"'\\ \t/"), min_size=1, max_size=10)


@pytest.mark.parametrize("fmt", ["csv", "mlfw", "pairs-label"])
@BOUNDED
@given(rows=st.lists(st.tuples(_name, _name, st.integers(0, 1)), min_size=1, max_size=20))
def test_what_a_writer_writes_reads_back(fmt, rows):
    spec = FORMATS.get(fmt)
    pairs = pd.DataFrame({"fold": 0, "left": [f"p/{a}.jpg" for a, _, _ in rows],
                          "right": [f"q/{b}.jpg" for _, b, _ in rows], "label": [c for *_, c in rows]})
    back = spec.reader(spec.writer(check_pair_table(pairs)), source="x", n_folds=1)
    assert back["left"].tolist() == pairs["left"].tolist()
    assert back["right"].tolist() == pairs["right"].tolist()
    assert back["label"].tolist() == pairs["label"].tolist()
