"""The character classes the value rules refuse, checked against every code point."""

import sys
import unicodedata

from usersvc.domain import values


def test_control_characters_are_exactly_unicode_categories_cc_and_cs() -> None:
    # The rules search a regex of ranges; Unicode's categories are the definition.
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        category = unicodedata.category(ch)
        assert values._has_control(ch) == (category in {"Cc", "Cs"}), hex(code)
        assert values._unstorable(ch) == (ch == "\x00" or category == "Cs"), hex(code)


def test_a_control_character_anywhere_in_a_text_is_found() -> None:
    assert values._has_control("Ivan\x85Petrov")
    assert values._has_control("\ud800")
    assert not values._has_control("Иван Петров-Водкин")
    assert values._unstorable("ok\x00")
    assert not values._unstorable("tab\tis storable")
