"""Topic names and parsing."""

from __future__ import annotations

import pytest

from runtime.errors import ConfigError, InvalidInput
from runtime.mqtt.topics import Route, Topics, check_reply_topic


def test_prefix_template_and_every_topic() -> None:
    t = Topics.build("headframe/{site}/{node}", site="mine-7", node="crusher-2", pool_group=None)
    assert t.status == "headframe/mine-7/crusher-2/status"
    assert t.info == "headframe/mine-7/crusher-2/info"
    assert t.telemetry == "headframe/mine-7/crusher-2/telemetry"
    assert t.infer("part-id-reader") == "headframe/mine-7/crusher-2/models/part-id-reader/infer"
    assert t.result("a") == "headframe/mine-7/crusher-2/models/a/result"
    assert t.cmd("reload") == "headframe/mine-7/crusher-2/cmd/reload"
    assert t.subscriptions(commands=False) == [
        "headframe/mine-7/crusher-2/models/+/infer",
        "headframe/mine-7/crusher-2/models/+/chat",
        "headframe/mine-7/crusher-2/models/+/embed",
    ]
    assert t.embed("a") == "headframe/mine-7/crusher-2/models/a/embed"


def test_pool_uses_a_shared_subscription() -> None:
    t = Topics.build("plant/{node}", site="s1", node="n1", pool_group="line-a")
    subs = t.subscriptions(commands=True)
    assert "$share/line-a/headframe/s1/pool/+/infer" in subs
    assert "plant/n1/cmd/+" in subs
    assert t.pool_infer("x") == "headframe/s1/pool/x/infer"
    assert t.parse("headframe/s1/pool/x/infer") == Route("infer", "x", pooled=True)


def test_parse_routes_only_our_topics() -> None:
    t = Topics.build("headframe/{site}/{node}", site="s", node="n", pool_group=None)
    assert t.parse("headframe/s/n/models/app/infer") == Route("infer", "app")
    assert t.parse("headframe/s/n/models/app/chat") == Route("chat", "app")
    assert t.parse("headframe/s/n/models/app/embed") == Route("embed", "app")
    assert t.parse("headframe/s/n/cmd/reload") == Route("cmd", "reload")
    for other in (
        "headframe/s/n/models/app/result",
        "headframe/s/n/models//infer",
        "headframe/s/n/status",
        "headframe/s/other/models/app/infer",
        "headframe/s/pool/app/infer",  # no pool configured
    ):
        assert t.parse(other) is None, other


@pytest.mark.parametrize(
    "template", ["headframe/{site}/{oops}", "a/+/b", "$SYS/{node}", "a//b", "/lead", "{0}"]
)
def test_bad_prefix_is_a_config_error(template: str) -> None:
    with pytest.raises(ConfigError):
        Topics.build(template, site="s", node="n", pool_group=None)


@pytest.mark.parametrize("topic", [None, "", "a/+/b", "a/#", "$SYS/x", "a\x00b"])
def test_bad_response_topics_are_refused(topic: str | None) -> None:
    with pytest.raises(InvalidInput):
        check_reply_topic(topic)
    assert check_reply_topic("site/replies/42") == "site/replies/42"
