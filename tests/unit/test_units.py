"""Durations, percentages and times are parsed once, at the edge, and refused when odd."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ccci.quantities import (
    format_bytes,
    format_duration,
    format_percent,
    format_spec_duration,
    format_time,
    parse_duration,
    parse_percent,
    parse_time,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
        ("1d12h", timedelta(days=1, hours=12)),
    ],
)
def test_a_duration_is_parsed_into_a_timedelta(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["10", "h", "", "1.5h", "24 h", "-1h", "24H", "1y", "h24"])
def test_a_duration_without_a_number_and_a_unit_is_refused(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == f"{text!r} is not a duration (like 30m, 24h, 14d)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("80%", 0.8), ("0%", 0.0), ("100%", 1.0), ("12.5%", 0.125), ("100.0%", 1.0)],
)
def test_a_percentage_is_parsed_into_a_ratio(text: str, expected: float) -> None:
    assert parse_percent(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["101%", "-1%", "80", "180%", "100.5%", "%", "eighty%", "0.8"])
def test_a_percentage_outside_0_to_100_or_without_a_sign_is_refused(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_percent(text)
    assert str(caught.value) == f"{text!r} is not a percentage"


def test_docker_timestamps_with_nanoseconds_and_z_are_utc() -> None:
    parsed = parse_time("2026-11-25T03:00:00.123456789Z")
    assert parsed == datetime(2026, 11, 25, 3, 0, 0, 123456, tzinfo=UTC)
    assert parsed.tzinfo is UTC


def test_a_timestamp_with_an_offset_is_converted_to_utc() -> None:
    parsed = parse_time("2026-11-25T04:30:00.987654321+01:30")
    assert parsed == datetime(2026, 11, 25, 3, 0, 0, 987654, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_a_timestamp_with_fewer_fraction_digits_keeps_them() -> None:
    # Docker's RFC3339Nano drops trailing zeros: ".5" is half a second.
    assert parse_time("2026-11-25T03:00:00.5Z") == datetime(
        2026, 11, 25, 3, 0, 0, 500000, tzinfo=UTC
    )


def test_a_timestamp_without_a_zone_is_taken_as_utc() -> None:
    assert parse_time("2026-11-25T03:00:00") == datetime(2026, 11, 25, 3, tzinfo=UTC)


def test_a_timestamp_that_is_not_rfc_3339_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_format_time_round_trips_with_parse_time() -> None:
    moment = datetime(2026, 11, 27, 3, 0, 0, 120000, tzinfo=UTC)
    text = format_time(moment)
    assert text == "2026-11-27T03:00:00.120000Z"
    assert parse_time(text) == moment


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=3, hours=5), "3 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=23, minutes=59), "23 hours"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(seconds=59), "59 seconds"),
        (timedelta(seconds=1), "1 second"),
    ],
)
def test_an_age_is_said_the_way_people_say_it(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


@pytest.mark.parametrize(
    ("ratio", "expected"), [(0.8, "80%"), (0.41, "41%"), (0.795, "79.5%"), (1.0, "100%")]
)
def test_a_ratio_is_shown_as_a_percentage(ratio: float, expected: str) -> None:
    assert format_percent(ratio) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (41_000_000, "39.1 MiB"),
        (5 * 2**40, "5.0 TiB"),
    ],
)
def test_byte_counts_use_binary_units(size: int, expected: str) -> None:
    assert format_bytes(size) == expected


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(hours=24), "24h"),
        (timedelta(hours=48), "48h"),
        (timedelta(days=3), "3d"),
        (timedelta(days=14), "14d"),
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=30), "30m"),
        (timedelta(seconds=45), "45s"),
    ],
)
def test_an_age_limit_is_written_back_in_policy_syntax(delta: timedelta, expected: str) -> None:
    # Reasons quote the limit as policies write it: DESIGN.md's "≥ 24h", not "≥ 1d".
    assert format_spec_duration(delta) == expected
    assert parse_duration(expected) == delta
