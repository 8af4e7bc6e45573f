import pytest

from mirage.augment.counts import parse_band, parse_count, parse_speakers, parse_unit_float
from mirage.featstore.errors import ConfigError


@pytest.mark.parametrize("value,n_real,expected", [("4x", 100, 400), ("0.5x", 10, 5), ("2X", 3, 6), ("1000", None, 1000),
                                                   (7, None, 7), (" 12 ", 5, 12)])
def test_parse_count(value, n_real, expected):
    assert parse_count(value, n_real) == expected


@pytest.mark.parametrize("value", ["abc", "0", "-3", "4y", "x", "0x", "", "1.5", 0, -1, True])
def test_parse_count_rejects(value):
    with pytest.raises(ConfigError, match="--n: expected"):
        parse_count(value, 10)


def test_parse_count_message_names_input():
    with pytest.raises(ConfigError) as e:
        parse_count("abc", 10)
    assert str(e.value) == "--n: expected Nx or a positive integer, got 'abc'"


def test_unit_float_and_band():
    assert parse_unit_float("0.6", flag="--min-mi") == 0.6
    for bad in ("1.5", "-0.1", "nan", "x"):
        with pytest.raises(ConfigError, match="--min-mi"):
            parse_unit_float(bad, flag="--min-mi")
    assert parse_band(None) == (0.0, 1.0)
    assert parse_band("0.6,0.95") == (0.6, 0.95)
    for bad in ("0.9,0.5", "0.5", "0.2,1.2"):
        with pytest.raises(ConfigError, match="--mi-band"):
            parse_band(bad)


def test_parse_speakers_keeps_leading_zeros():
    assert parse_speakers("08, 03,,03") == ("03", "08")
    assert parse_speakers(None) == ()
    assert parse_speakers(["3", "10"]) == ("10", "3")


def test_count_spec_checks_form_only_so_fractions_of_big_sets_pass():
    from mirage.augment.counts import check_count_spec

    assert check_count_spec("0.5x") == "0.5x" and check_count_spec("0.01x") == "0.01x" and check_count_spec(12) == 12
    for bad in ("0x", "-1x", "abc", 0, "nanx"):
        with pytest.raises(ConfigError, match="--n"):
            check_count_spec(bad)
    assert parse_count("0.5x", 535) == 268
    with pytest.raises(ConfigError, match="zero items"):
        parse_count("0.001x", 10)
