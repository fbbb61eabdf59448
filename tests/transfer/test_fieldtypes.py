"""A value as a Config field of each kind holds it: lists become tuples, integers become floats where
floats are meant, text lists are split, and a value of the wrong type (booleans included, where numbers
are meant) is one NSTError naming the field, what it must be and where it came from."""

import pytest

from nst_jax.base.errors import NSTError
from nst_jax.transfer.fieldtypes import parse_names
from nst_jax.transfer.fieldtypes import coerce_value


@pytest.mark.parametrize("kind, value, expected", [
    ("bool", True, True),
    ("bool", False, False),
    ("int", 7, 7),
    ("float", 3, 3.0),
    ("float", 2.5, 2.5),
    ("str", "x", "x"),
    ("path", "a/b.png", "a/b.png"),
    ("names", ["relu1_1", "relu2_1"], ("relu1_1", "relu2_1")),
    ("names", "relu1_1, relu2_1,,", ("relu1_1", "relu2_1")),   # a text list, split by the parser given
    ("paths", "one.png", ("one.png",)),                         # one path is a list of one
    ("paths", ["a.png", "b.png"], ("a.png", "b.png")),
    ("floats", [1, 2.5], (1.0, 2.5)),
    ("ints", (4, 5), (4, 5)),
    ("floats", [], ()),
])
def test_a_right_value_is_held_as_its_kind(kind, value, expected):
    got = coerce_value("field", kind, value, parse_names=parse_names)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(got, tuple):
        assert all(type(a) is type(b) for a, b in zip(got, expected))   # 1 → 1.0 in a list of floats


@pytest.mark.parametrize("kind, value, words", [
    ("bool", 1, "true or false"),
    ("bool", "true", "true or false"),
    ("int", 2.0, "an integer"),
    ("int", True, "an integer"),          # a boolean is not a number here, although Python's bool is an int
    ("float", False, "a number"),
    ("float", "1e3", "a number"),
    ("str", 5, "a string"),
    ("path", ["a.png"], "a file path (a string)"),
    ("names", 5, "a list of names"),
    ("names", ["ok", 3], "a list of names"),
    ("floats", "1,2", "a list of numbers"),    # a text is split only for names and paths
    ("floats", [1, True], "a list of numbers"),
    ("ints", [1, 2.5], "a list of integers"),
    ("paths", [None], "a list of file paths"),
])
def test_a_wrong_value_is_one_error_naming_the_field_and_what_it_must_be(kind, value, words):
    with pytest.raises(NSTError) as err:
        coerce_value("style_weight", kind, value, parse_names=parse_names)
    assert str(err.value) == f"style_weight must be {words}, got {value!r}"


def test_the_error_says_where_the_value_came_from():
    with pytest.raises(NSTError) as err:
        coerce_value("size", "int", "big", where="grid grid.toml: ")
    assert str(err.value) == "grid grid.toml: size must be an integer, got 'big'"


def test_a_list_value_is_a_new_tuple_not_the_callers_list():
    given = [1, 2]
    got = coerce_value("scales", "ints", given)
    given.append(3)
    assert got == (1, 2)
