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


# --- the Response Topic policy (runtime.mqtt.reply_topics) ---------------------------------

LEAVES = ["cmd/reload", "cmd/select", "cmd/update-now", "status", "info", "telemetry",
          "events/alarm", "fleet/state", "models/a/infer", "models/a/result", "pool"]  # fmt: skip
OWN_TREES = [
    # this node's and any other node's tree, every branch a node uses
    *(f"headframe/mine/{node}/{leaf}" for node in ("n1", "other") for leaf in LEAVES),
    "headframe/mine/n1",
    "headframe/other-site/n9/cmd/reload",
    "headframe/mine/pool/part-id-reader/infer",
    "headframe/anything",
    "spBv1.0/mine/NCMD/n1",
    "spBv1.0/mine/DCMD/n1/dev",
    "spBv1.0",
]


@pytest.mark.parametrize("topic", OWN_TREES)
def test_replies_on_any_nodes_topics_are_refused(topic: str) -> None:
    from runtime.mqtt.reply_topics import ReplyTopics

    with pytest.raises(InvalidInput, match="headframe's own topics"):
        ReplyTopics("headframe/{site}/{node}").check(topic)


def test_a_custom_prefix_is_refused_for_every_node_and_headframe_stays_refused() -> None:
    from runtime.mqtt.reply_topics import ReplyTopics

    policy = ReplyTopics("plant/{site}-lines/{node}")
    for topic in ("plant/s1-lines/n2/cmd/reload", "plant/s9-lines/x/status",
                  "headframe/s1/pool/a/infer"):  # fmt: skip
        with pytest.raises(InvalidInput):
            policy.check(topic)
    # Outside the template's tree: a reply may go there.
    assert policy.check("plant/replies/7") == "plant/replies/7"
    assert policy.check("plant/s1-other/n2/cmd/reload") == "plant/s1-other/n2/cmd/reload"


def test_ordinary_reply_topics_pass() -> None:
    from runtime.mqtt.reply_topics import ReplyTopics

    policy = ReplyTopics("headframe/{site}/{node}")
    for topic in ("replies/scada/42", "site/replies", "headframes/x", "spBv1.0x/y"):
        assert policy.check(topic) == topic
    for bad in (None, "", "a/+/b", "$SYS/x"):  # the syntax checks still apply
        with pytest.raises(InvalidInput):
            policy.check(bad)


def test_stream_binding_topics_can_be_refused_through_the_hook() -> None:
    from runtime.mqtt.reply_topics import ReplyTopics

    policy = ReplyTopics("headframe/{site}/{node}")
    assert policy.check("plant/line-a/alerts/belt") == "plant/line-a/alerts/belt"
    policy.refuse("plant/+/alerts/#")
    with pytest.raises(InvalidInput, match="plant/\\+/alerts/#"):
        policy.check("plant/line-a/alerts/belt")
    assert policy.check("plant/line-a/readings") == "plant/line-a/readings"
    with pytest.raises(ConfigError):
        policy.refuse("plant/a+/x")


def test_reply_prefix_restricts_replies() -> None:
    from runtime.mqtt.reply_topics import ReplyTopics

    policy = ReplyTopics("headframe/{site}/{node}", reply_prefix="replies/mine")
    assert policy.check("replies/mine/scada/1") == "replies/mine/scada/1"
    for topic in ("replies/mineX/1", "replies/other/1", "elsewhere/x"):
        with pytest.raises(InvalidInput, match=r"outside mqtt\.reply_prefix"):
            policy.check(topic)
    with pytest.raises(ConfigError, match="reply_prefix"):
        ReplyTopics("headframe/{site}/{node}", reply_prefix="headframe/mine/replies")
