"""Spec strings: parsing, canonical spelling, splitting lists, and refusing everything else."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import initjax
from initjax.spec import Spec, parse_spec, split_specs


@pytest.mark.parametrize(
    "text, expected",
    [
        ("he_normal", Spec("he_normal")),
        ("  he_normal  ", Spec("he_normal")),
        ("he_normal()", Spec("he_normal", called=True)),
        ("normal(stddev=0.1)", Spec("normal", (), (("stddev", 0.1),), called=True)),
        ("constant(0.5)", Spec("constant", (0.5,), called=True)),
        (
            "variance_scaling(scale=2.0, mode='fan_in', distribution=\"normal\")",
            Spec("variance_scaling", (), (("distribution", "normal"), ("mode", "fan_in"), ("scale", 2.0)), called=True),
        ),
        ("pkg.mod:fn", Spec("pkg.mod:fn")),
        ("pkg.mod:fn()", Spec("pkg.mod:fn", called=True)),
        ("pkg.mod:fn(k=(1, 2))", Spec("pkg.mod:fn", (), (("k", (1, 2)),), called=True)),
    ],
)
def test_parse(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "(", "normal(", "normal(stddev=)", "normal(stddev=x)", "normal(stddev=__import__('os'))",
     "normal(**{'a': 1})", "normal(*[1])", "1normal", "a:b:c", "normal(1)(2)", "normal(stddev=0.1) extra"],
)
def test_malformed_specs_are_value_errors(text):
    with pytest.raises(ValueError):
        parse_spec(text)


def test_canonical_spelling_is_stable():
    a = initjax.canonical("variance_scaling( mode = 'fan_avg' ,scale=2.0)")
    b = initjax.canonical('variance_scaling(scale=2.0, mode="fan_avg")')
    assert a == b == "variance_scaling(mode='fan_avg', scale=2.0)"
    assert parse_spec(a) == parse_spec(b)


def test_split_respects_brackets_and_quotes():
    assert split_specs("he_normal, normal(stddev=0.1),variance_scaling(scale=2.0, mode='a,b')") == [
        "he_normal", "normal(stddev=0.1)", "variance_scaling(scale=2.0, mode='a,b')"
    ]
    for bad in ["he_normal,,zeros", "normal(stddev=0.1", "normal)", "normal(mode='x)", ","]:
        with pytest.raises(ValueError):
            split_specs(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(text):
    try:
        spec = parse_spec(text)
    except ValueError as error:
        assert "\n" not in str(error)  # one line, whatever the input
        return
    assert parse_spec(str(spec)) == spec  # the canonical form reads back to itself


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc_(),'=0.1 :", max_size=30))
def test_any_text_resolves_or_raises_value_error(text):
    try:
        init = initjax.get(text)
    except ValueError as error:
        assert "\n" not in str(error)
    else:
        assert callable(init)


def test_empty_parentheses_matter_only_for_user_builders():
    assert str(parse_spec("he_normal()")) == "he_normal"  # a registered name: the same initializer
    assert str(parse_spec("pkg.mod:fn()")) == "pkg.mod:fn()"  # a user builder called with its defaults
    assert str(parse_spec("pkg.mod:fn")) == "pkg.mod:fn"  # the user's initializer itself
