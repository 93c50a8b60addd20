"""ACL files in Mosquitto's format: parsing, and the answers one client's rules give."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.broker.auth.acl import READ, WRITE, AclFile, AclFileError, AclRule

# Mosquitto's own example file (aclfile.example in its sources and Debian's docs).
MOSQUITTO_EXAMPLE = """\
# This affects access control for clients with no username.
topic read $SYS/#

# This only affects clients with username "roger".
user roger
topic foo/bar

# This affects all clients.
pattern write $SYS/broker/connection/%c/state
"""


def check(
    text: str, access: int, topic: str, username: str | None = "u", client_id: str = "c"
) -> bool | None:
    return AclFile.parse(text).rules_for(username, client_id).check(access, topic)


def subscribe(
    text: str, topic_filter: str, username: str | None = "u", client_id: str = "c"
) -> bool | None:
    return AclFile.parse(text).rules_for(username, client_id).check_subscribe(topic_filter)


# -- parsing ----------------------------------------------------------------------------


def test_mosquittos_example_file() -> None:
    acl = AclFile.parse(MOSQUITTO_EXAMPLE)
    assert acl.anonymous == (AclRule(READ, "$SYS/#", 2),)
    assert acl.users == {"roger": (AclRule(READ | WRITE, "foo/bar", 6),)}
    assert acl.patterns == (AclRule(WRITE, "$SYS/broker/connection/%c/state", 9),)
    anonymous = acl.rules_for(None, "bridge1")
    assert anonymous.check(READ, "$SYS/broker/uptime") is True
    assert anonymous.check(WRITE, "$SYS/broker/uptime") is False
    assert anonymous.check(WRITE, "$SYS/broker/connection/bridge1/state") is True
    assert anonymous.check(WRITE, "$SYS/broker/connection/other/state") is False
    roger = acl.rules_for("roger", "r")
    assert roger.check(READ, "foo/bar") is True
    assert roger.check(WRITE, "foo/bar") is True
    # User lines replace the anonymous ones: roger may not read $SYS.
    assert roger.check(READ, "$SYS/broker/uptime") is False


def test_access_words_and_topics_with_spaces() -> None:
    acl = AclFile.parse(
        "user u\ntopic read r\ntopic write w\ntopic readwrite rw\ntopic deny d\n"
        "topic read with space/x\ntopic   lone  \n"
    )
    assert acl.users["u"] == (
        AclRule(0, "d", 5),
        AclRule(READ, "r", 2),
        AclRule(WRITE, "w", 3),
        AclRule(READ | WRITE, "rw", 4),
        AclRule(READ, "with space/x", 6),
        AclRule(READ | WRITE, "lone", 7),
    )


def test_a_user_may_have_several_sections() -> None:
    acl = AclFile.parse("user u\ntopic a\nuser v\ntopic b\nuser u\ntopic c\n")
    assert [rule.topic_filter for rule in acl.users["u"]] == ["a", "c"]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("topic\n", 1, "without a topic"),
        ("# c\nuser\n", 2, "without a username"),
        ("topic maybe a/b c\n", 1, "unknown access 'maybe'"),
        ("topic read a/#/b\n", 1, "invalid topic filter"),
        ("pattern write a/b+\n", 1, "invalid topic filter"),
        ("\n\ntopics read a\n", 3, "unknown line"),
    ],
)
def test_errors_name_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(AclFileError, match=problem) as caught:
        AclFile.parse(text, "acl.conf")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"acl.conf:{line}: ")


def test_load_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(AclFileError, match="cannot read the file"):
        AclFile.load(tmp_path / "missing")


# -- answers ----------------------------------------------------------------------------


def test_deny_lines_win_over_broader_grants_whatever_their_order() -> None:
    text = "user u\ntopic readwrite a/#\ntopic deny a/secret/#\n"
    assert check(text, READ, "a/x") is True
    assert check(text, READ, "a/secret") is False
    assert check(text, WRITE, "a/secret/deeper") is False


def test_a_match_without_the_access_asked_for_is_passed_over() -> None:
    text = "user u\ntopic read a/#\ntopic write a/b\n"
    assert check(text, WRITE, "a/b") is True
    assert check(text, WRITE, "a/c") is False
    assert check(text, READ, "a/c") is True


def test_patterns_substitute_client_id_and_username_as_whole_levels() -> None:
    text = "pattern readwrite devices/%c/#\npattern read users/%u/inbox\npattern write x%cx\n"
    assert check(text, WRITE, "devices/c7/temp", client_id="c7") is True
    assert check(text, WRITE, "devices/c8/temp", client_id="c7") is False
    assert check(text, READ, "users/ann/inbox", username="ann") is True
    assert check(text, READ, "users/bob/inbox", username="ann") is False
    # Only a whole level is substituted (as mosquitto.conf(5) says it must be).
    assert check(text, WRITE, "x%cx", client_id="c7") is True
    assert check(text, WRITE, "xc7x", client_id="c7") is False


def test_username_patterns_do_not_apply_to_anonymous_clients() -> None:
    text = "pattern read users/%u/#\npattern read public/#\n"
    assert check(text, READ, "users/%u/x", username=None) is False
    assert check(text, READ, "public/x", username=None) is True


@pytest.mark.parametrize(("username", "client_id"), [("a+", "c"), ("u", "c#"), ("#", "+")])
def test_no_pattern_applies_to_identities_with_wildcards(username: str, client_id: str) -> None:
    # CVE-2017-7650: "pattern read devices/%c/#" with client id "#" would read everything.
    text = "pattern read devices/%c/#\npattern read users/%u/#\npattern read public/#\n"
    assert check(text, READ, "public/x", username, client_id) is False
    assert check(text, READ, f"devices/{client_id}/x", username, client_id) is False
    # The user's own rules still apply.
    assert check(f"user {username}\ntopic read mine\n" + text, READ, "mine", username, client_id)


def test_own_rules_are_asked_before_patterns() -> None:
    text = "user u\ntopic deny devices/#\npattern readwrite devices/%c/#\n"
    assert check(text, WRITE, "devices/c/x") is False
    text = "user u\ntopic read devices/#\npattern deny devices/%c/#\n"
    assert check(text, READ, "devices/c/x") is True


def test_dollar_topics_are_matched_only_by_dollar_rules() -> None:
    text = "user u\ntopic readwrite #\ntopic read +/broker/#\ntopic read $SYS/broker/load/#\n"
    assert check(text, READ, "any/thing") is True
    assert check(text, READ, "$SYS/broker/uptime") is False
    assert check(text, READ, "$SYS/broker/load/1min") is True
    assert check(text, WRITE, "$SYS/broker/load/1min") is False


def test_a_client_the_file_says_nothing_about_is_left_to_the_next_backend() -> None:
    text = "user other\ntopic read x\n"
    assert check(text, READ, "x", username="u") is None
    assert subscribe(text, "x", username="u") is None
    # Once the file has patterns every client has rules: what they do not grant is denied.
    assert check(text + "pattern read p/%c\n", READ, "x", username="u") is False
    # Anonymous clients have the lines before any "user".
    assert check("topic read x\n", READ, "y", username=None) is False
    assert check("topic read x\n", READ, "y", username="u") is None


# -- subscribing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "allowed"),
    [
        ("sensors/kitchen/temp", True),
        ("sensors/+/temp", True),  # some matching topics are readable
        ("sensors/#", True),
        ("#", True),
        ("+/+/temp", True),
        ("sensors", False),  # "sensors/+/temp" needs three levels
        ("other/#", False),
        ("sensors/secret/#", False),  # wholly inside a deny rule
        ("sensors/secret/temp", False),
        ("sensors/+/+", True),  # overlaps the deny, but not wholly inside it
        ("$SYS/#", False),  # wildcards in the rules do not reach $-topics
    ],
)
def test_subscribe_is_allowed_when_some_topic_it_reaches_is_readable(
    topic_filter: str, allowed: bool
) -> None:
    text = "user u\ntopic read sensors/+/temp\ntopic write sensors/#\ntopic deny sensors/secret/#\n"
    assert subscribe(text, topic_filter) is allowed


def test_subscribe_edge_cases_of_hash_and_dollar() -> None:
    text = "user u\ntopic read a/#\ntopic read $SYS/broker/#\n"
    assert subscribe(text, "a") is True  # "a/#" matches "a" itself
    assert subscribe(text, "+") is True  # ... and "a" is one level
    assert subscribe(text, "$SYS/#") is True
    assert subscribe(text, "$SYS/other") is False
    assert subscribe("user u\ntopic deny a/#\ntopic read #\n", "a") is False  # wholly denied
    assert subscribe("user u\ntopic deny a/+\ntopic read #\n", "a/#") is True
    assert subscribe("user u\ntopic deny +/x\ntopic read $q/x\n", "$q/x") is True
    assert subscribe("user u\ntopic write a/#\n", "a/#") is False  # write is not read


def test_subscribe_with_patterns() -> None:
    text = "pattern read devices/%c/#\n"
    assert subscribe(text, "devices/c/#", client_id="c") is True
    assert subscribe(text, "devices/+/status", client_id="c") is True  # reaches devices/c/status
    assert subscribe(text, "devices/d/#", client_id="c") is False
