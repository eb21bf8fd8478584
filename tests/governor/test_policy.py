"""The governor's pure decisions: sustain, hard, hysteresis, flapping, back-off."""

from __future__ import annotations

from runtime.config.governor import GovernorSettings
from runtime.governor.ladder import Rung, lighter, rung_below
from runtime.governor.policy import Policy, assess, thresholds
from runtime.governor.signals import Reading

SETTINGS = GovernorSettings(sustain_s=10, hold_s=60, backoff_s=30)
TABLE = thresholds(SETTINGS)


def mem(pct: float) -> list[Reading]:
    return [Reading("memory_available_pct", pct, "MemAvailable")]


def policy() -> Policy:
    return Policy(SETTINGS.sustain_s, SETTINGS.hold_s, SETTINGS.backoff_s)


def test_soft_pressure_steps_down_only_after_the_sustain_time() -> None:
    p = policy()
    assert p.decide(0, assess(mem(12), TABLE), stepped_down=False, shedding=False).action == "none"
    d = p.decide(9.9, assess(mem(12), TABLE), stepped_down=False, shedding=False)
    assert d.action == "none" and "step down in 0.1 s" in d.next
    d = p.decide(10, assess(mem(12), TABLE), stepped_down=False, shedding=False)
    assert (d.action, d.kind, d.level) == ("step_down", "memory", "soft")
    assert "memory_available_pct 12.0% (MemAvailable) < soft 15%" in d.reason


def test_hard_pressure_steps_down_at_once() -> None:
    d = policy().decide(0, assess(mem(3), TABLE), stepped_down=False, shedding=False)
    assert (d.action, d.level) == ("step_down", "hard")
    assert "< hard 5%" in d.reason


def test_step_up_waits_for_the_recovery_margin_and_the_hold() -> None:
    p = policy()
    p.decide(0, assess(mem(3), TABLE), stepped_down=False, shedding=False)
    p.started(0)
    p.finished(1, True)
    # 16% is out of pressure but not beyond the margin (15 + 0.5 * 10 = 20%).
    d = p.decide(2, assess(mem(16), TABLE), stepped_down=True, shedding=False)
    assert d.action == "none" and "recovery margin" in d.next
    d = p.decide(50, assess(mem(16), TABLE), stepped_down=True, shedding=False)
    assert d.action == "none"
    assert p.decide(51, assess(mem(25), TABLE), stepped_down=True, shedding=False).next.startswith(
        "step up in 59.0 s"
    )  # the hold counts from the last sample that had not recovered
    assert p.decide(109, assess(mem(25), TABLE), stepped_down=True, shedding=False).action == "none"
    assert p.decide(110, assess(mem(25), TABLE), stepped_down=True, shedding=False).action == (
        "step_up"
    )


def test_a_signal_flapping_around_the_threshold_never_swaps() -> None:
    p = policy()
    swaps = 0
    for t in range(600):  # ten minutes, one sample a second, crossing every 4 s
        value = 14.0 if (t // 4) % 2 == 0 else 16.0
        d = p.decide(float(t), assess(mem(value), TABLE), stepped_down=swaps > 0, shedding=False)
        if d.action in ("step_down", "step_up"):
            swaps += 1
            p.started(float(t))
            p.finished(float(t), True)
    assert swaps == 0


def test_after_one_step_down_a_flapping_signal_does_not_step_back_up() -> None:
    p = policy()
    actions = []
    for t in range(300):
        value = 12.0 if t < 20 else (14.0 if (t // 4) % 2 == 0 else 16.0)
        d = p.decide(float(t), assess(mem(value), TABLE), stepped_down=bool(actions),
                     shedding=False)  # fmt: skip
        if d.action != "none":
            actions.append((t, d.action))
            p.started(float(t))
            p.finished(float(t), True)
    assert actions == [(10, "step_down")]


def test_a_failed_swap_backs_off() -> None:
    p = policy()
    p.decide(0, assess(mem(3), TABLE), stepped_down=False, shedding=False)
    p.started(0)
    p.finished(1, False)
    d = p.decide(2, assess(mem(3), TABLE), stepped_down=False, shedding=False)
    assert d.action == "none" and "backing off" in d.next
    assert p.decide(31, assess(mem(3), TABLE), stepped_down=False, shedding=False).action == (
        "step_down"
    )


def test_never_two_swaps_at_once() -> None:
    p = policy()
    p.started(0)
    d = p.decide(1, assess(mem(1), TABLE), stepped_down=False, shedding=False)
    assert d.action == "none" and "swap in progress" in d.next


def test_shedding_stops_once_recovered() -> None:
    p = policy()
    assert p.decide(0, assess(mem(30), TABLE), stepped_down=False, shedding=True).action == (
        "stop_shed"
    )


def test_thermal_uses_the_margin_to_the_trip_and_load_is_off_by_default() -> None:
    a = assess([Reading("thermal_margin_c", 2.0, "zone0"), Reading("queue", 500, "q", "a")], TABLE)
    assert (a.level, a.kind) == (2, "thermal")
    on = thresholds(GovernorSettings(queue_soft=8, queue_hard=32))
    a = assess([Reading("queue", 10, "a queue", "a")], on)
    assert (a.level, a.kind, a.app) == (1, "load", "a")


def test_the_ladder_orders_by_peak_memory_or_by_latency() -> None:
    rungs = [Rung("big", 300, 10), Rung("mid", 200, 30), Rung("small", 100, 20)]
    assert rung_below(rungs, "big", "memory") == (rungs[0], rungs[1])
    assert rung_below(rungs, "small", "memory") is None
    assert rung_below(rungs, "mid", "thermal") == (rungs[1], rungs[2])
    assert rung_below(rungs, "big", "thermal") is None
    assert rung_below(rungs, "gone", "memory") is None


def test_memory_order_is_peak_then_bytes_and_lighter_keeps_the_nearest() -> None:
    # Equal peaks: fewer bytes on disk is the lighter rung (the fleet keeps by this order).
    rungs = [Rung("a", 300, 1, 50), Rung("b", 200, 1, 90), Rung("c", 200, 1, 40),
             Rung("d", 100, 1, 10)]  # fmt: skip
    assert rung_below(rungs, "b", "memory") == (rungs[1], rungs[2])
    assert [r.variant for r in lighter(rungs, [rungs[0]], 2)] == ["b", "c"]
    assert [r.variant for r in lighter(rungs, [rungs[0], rungs[2]], 8)] == ["d"]
    assert lighter(rungs, [rungs[0]], 0) == [] and lighter(rungs, [], 2) == []
