"""What every MQTT session says about its trouble (runtime/mqtt/diagnostics.py): each
message once, repeats at DEBUG until REPEAT_AFTER_S has passed or a session was accepted;
the refusal table; a session the broker keeps closing."""

from __future__ import annotations

import logging

import pytest

from runtime.mqtt.diagnostics import (
    FLAPPING_AFTER,
    REPEAT_AFTER_S,
    SHORT_SESSION_S,
    TAKEN_OVER,
    Diagnostics,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_failure_is_said_once_then_again_after_the_quiet_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    d = Diagnostics("streams", "headframe-streams-1", clock)
    for _ in range(5):
        d.failed("cannot connect to 127.0.0.1:1: refused")
        clock.now += 10
    d.failed("cannot connect to 127.0.0.1:1: timed out")  # a new reason is news
    assert _said(caplog, logging.WARNING) == [
        "streams: cannot connect to 127.0.0.1:1: refused (retrying with back-off)",
        "streams: cannot connect to 127.0.0.1:1: timed out (retrying with back-off)",
    ]
    assert len(_said(caplog, logging.DEBUG)) == 4
    assert d.failures == 6 and d.last_error == "cannot connect to 127.0.0.1:1: timed out"
    clock.now += REPEAT_AFTER_S + 1
    d.failed("cannot connect to 127.0.0.1:1: refused")
    assert len(_said(caplog, logging.WARNING)) == 3


def test_an_accepted_session_makes_the_old_trouble_worth_saying_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    d = Diagnostics("mqtt", "headframe-n1", Clock())
    d.failed("x")
    d.failed("x")
    d.accepted()
    assert d.last_error is None
    d.failed("x")
    assert len(_said(caplog, logging.WARNING)) == 2


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (133, "the broker rejected the client id"),
        (134, "bad user name or password"),
        (135, "not authorised (wrong user name or password, or not allowed to connect)"),
        (138, "banned by the broker"),
        (140, "bad authentication method"),
        (159, "Connection rate exceeded"),  # not in the table: the broker's own words
    ],
)
def test_the_refusal_table(code: int, says: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    d = Diagnostics("sparkplug", "headframe-spb-g-e", Clock())
    assert d.refused(code, "Connection rate exceeded", "broker:1883") == says
    assert _said(caplog, logging.WARNING) == [
        f"sparkplug: broker broker:1883 refused us: {says} (retrying with back-off)"
    ]


def test_a_disconnect_reason_says_what_to_fix_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    d = Diagnostics("mqtt", "headframe-n1", Clock())
    assert d.disconnected(TAKEN_OVER) == "client id in use"
    assert d.disconnected(TAKEN_OVER) == "client id in use"
    assert d.disconnected(135) is not None
    assert d.disconnected(0) is None and d.disconnected(141) is None  # ordinary losses
    said = _said(caplog, logging.ERROR)
    assert len(said) == 2
    assert "our client id 'headframe-n1'" in said[0] and "mqtt.client_id" in said[0]


def test_sessions_closed_right_after_they_began_count_as_a_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    d = Diagnostics("mqtt", "headframe-n1", Clock())
    assert d.session_ended(False, 0.1) is None  # never accepted: a failure, not a flap
    for _ in range(FLAPPING_AFTER - 1):
        assert d.session_ended(True, 0.1) is None
    assert d.session_ended(True, 0.1) == "sessions keep being closed"
    assert d.session_ended(True, 0.1) == "sessions keep being closed"
    assert len(_said(caplog, logging.ERROR)) == 1  # said at the third, not at the fourth
    assert d.session_ended(True, SHORT_SESSION_S + 1) is None  # a session that lasted
    assert d.short_sessions == 0
