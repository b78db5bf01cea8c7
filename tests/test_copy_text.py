"""loader.copy_text: the one COPY text encoder the loader and the live feed share."""

from __future__ import annotations

from loader.copy_text import NULL, copy_text, copy_text_row


def test_special_characters_are_escaped_and_nul_dropped():
    assert copy_text("a\\b\tc\nd\re\x00f") == "a\\\\b\\tc\\nd\\re" + "f"


def test_none_is_the_null_marker_and_other_values_their_text():
    assert copy_text(None) == NULL == "\\N"
    assert copy_text(12) == "12"
    assert copy_text(1.5) == "1.5"
    assert copy_text("") == ""


def test_a_row_is_tab_separated_and_ends_in_a_newline():
    assert copy_text_row(["AAPL", None, 3, "x\ty"]) == "AAPL\t\\N\t3\tx\\ty\n"
