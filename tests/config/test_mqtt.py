"""The [mqtt] settings an operator writes: names that become topic levels, the command
switches, the reply prefix. Each bad value is refused at load with the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import MqttSettings, load_settings
from runtime.errors import ConfigError


def _load(tmp_path: Path, body: str) -> MqttSettings:
    cfg = tmp_path / "headframe.toml"
    cfg.write_text("[mqtt]\n" + body + "\n")
    s = load_settings(cfg, use_default_file=False)
    assert s.mqtt is not None
    return s.mqtt


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('node = "crusher\\u0000-2"', "NUL"),
        ('site = "mine\\u0000"', "NUL"),
        ('node = "$SYS"', "must not start with \\$"),
        ('site = "$share"', "must not start with \\$"),
        ('node = "a/b"', "one topic level"),
        ('node = "a+b"', "one topic level"),
        ('site = "#"', "one topic level"),
        ('node = "tab\\there"', "control characters"),
        ('node = ""', "at least 1"),
    ],
)
def test_site_and_node_names_that_cannot_be_a_topic_level_are_refused(
    tmp_path: Path, line: str, why: str
) -> None:
    key = line.split(" ")[0]
    with pytest.raises(ConfigError, match=f"headframe.toml.*mqtt.{key}.*{why}"):
        _load(tmp_path, line)


def test_ordinary_names_are_kept(tmp_path: Path) -> None:
    s = _load(tmp_path, 'site = "mine-7 north"\nnode = "crusher_2.a$"')
    assert (s.site, s.node) == ("mine-7 north", "crusher_2.a$")


def test_commands_that_change_what_is_served_are_off_by_default(tmp_path: Path) -> None:
    s = _load(tmp_path, "")
    c = s.commands
    assert c.enabled("status")
    assert not c.enabled("reload") and not c.enabled("select") and not c.enabled("update-now")
    assert not c.enabled("anything-registered-later")
    on = _load(tmp_path, "[mqtt.commands]\nreload = true\nupdate_now = true").commands
    assert on.enabled("reload") and on.enabled("update-now") and not on.enabled("select")
    with pytest.raises(ConfigError, match=r"unknown key 'mqtt\.commands\.explode'"):
        _load(tmp_path, "[mqtt.commands]\nexplode = true")


def test_reply_prefix_is_a_plain_topic(tmp_path: Path) -> None:
    assert _load(tmp_path, 'reply_prefix = "replies/mine/"').reply_prefix == "replies/mine"
    for bad in ("replies/+", "replies/#", "$SYS/x", "/"):
        with pytest.raises(ConfigError, match=r"mqtt\.reply_prefix"):
            _load(tmp_path, f'reply_prefix = "{bad}"')
