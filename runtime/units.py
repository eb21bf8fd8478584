"""Sizes as people read them: one unit style (binary: KiB, MiB, GiB) for the command line,
the status page and the selection's reasons."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """2_560 -> "2.5 KiB", 851_443_712 -> "812 MiB": binary units, about three significant
    figures (one decimal under 10)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "B":
                return f"{n} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def percent_bp(bp: int | None, missing: str = "-", digits: int = 2) -> str:
    """Basis points as a percentage, two decimals unless told: 9512 -> "95.12%",
    (5000, digits=0) -> "50%"; None -> ``missing``."""
    return missing if bp is None else f"{bp / 100:.{digits}f}%"
