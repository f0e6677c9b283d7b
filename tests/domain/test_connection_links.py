"""§2: links of a social network, how they are stored and when two of them are the same."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.domain.strategies import (
    FRAGMENTS,
    LABELS,
    NETWORKS,
    PATHS,
    QUERIES,
    SCHEMES,
    case_variants,
    links,
    prop,
)
from usersvc.domain.failures import LinkNotOfSocialNetwork
from usersvc.domain.model import SOCIAL_NETWORK_HOSTS, SocialNetwork
from usersvc.domain.values import LINK_MAX_LENGTH, parse_connection_link

ALL_HOSTS = sorted({h for hosts in SOCIAL_NETWORK_HOSTS.values() for h in hosts})


def is_rejected(result) -> bool:
    return isinstance(result, Failure) and isinstance(result.failure(), LinkNotOfSocialNetwork)


@prop
@given(link=links(), pad=st.sampled_from(["", " ", "\t", " \n "]))
def test_a_link_on_a_host_of_its_network_or_a_subdomain_is_accepted(link, pad):
    network, raw = link
    assert isinstance(parse_connection_link(network, pad + raw + pad), Success)


@prop
@given(link=links(), pad=st.sampled_from(["", " ", "\t", " \n "]))
def test_an_accepted_link_is_stored_trimmed_with_https_put_in_front_when_it_had_no_scheme(
    link, pad
):
    network, raw = link
    url = parse_connection_link(network, pad + raw + pad).unwrap().url
    has_scheme = raw.lower().startswith(("http://", "https://"))
    assert url == (raw if has_scheme else f"https://{raw}")


@prop
@given(link=links(), other=NETWORKS)
def test_a_link_of_one_network_is_rejected_for_every_other_network(link, other):
    network, raw = link
    if other is not network:
        assert is_rejected(parse_connection_link(other, raw))


@st.composite
def same_links(draw: st.DrawFn) -> tuple[SocialNetwork, str, str]:
    """Two spellings of one link: scheme, host case, www., query, fragment, trailing /."""
    network = draw(NETWORKS)
    host = draw(st.sampled_from(SOCIAL_NETWORK_HOSTS[network]))
    sub = draw(st.just("") | LABELS.map(lambda label: f"{label}."))
    path = draw(PATHS)

    @st.composite
    def spelling(draw: st.DrawFn) -> str:
        www = draw(st.sampled_from(["", "www.", "WWW.", "Www."]))
        return (
            draw(SCHEMES)
            + www
            + draw(case_variants(sub + host))
            + path
            + draw(st.sampled_from(["", "/"]))
            + draw(QUERIES)
            + draw(FRAGMENTS)
        )

    return network, draw(spelling()), draw(spelling())


@prop
@given(links=same_links())
def test_links_differing_only_in_scheme_host_case_www_query_fragment_and_trailing_slash_are_same(
    links,
):
    network, one, other = links
    assert (
        parse_connection_link(network, one).unwrap().key
        == parse_connection_link(network, other).unwrap().key
    )


@prop
@given(
    network=NETWORKS,
    data=st.data(),
    paths=st.lists(PATHS, min_size=2, max_size=2, unique=True),
    scheme=SCHEMES,
)
def test_links_with_different_paths_are_different(network, data, paths, scheme):
    host = data.draw(st.sampled_from(SOCIAL_NETWORK_HOSTS[network]))
    one, other = (parse_connection_link(network, f"{scheme}{host}{p}").unwrap() for p in paths)
    assert one.key != other.key


LOOK_ALIKES = {
    "network host followed by another domain": lambda h: f"{h}.evil.io",
    "a word glued in front": lambda h: f"not{h}",
    "another word glued in front": lambda h: f"evil{h}",
    "top-level domain cut short": lambda h: h[:-1],
    "top-level domain made longer": lambda h: f"{h}x",
    "a dash before the host": lambda h: f"evil-{h}",
}


@prop
@given(
    host=st.sampled_from(ALL_HOSTS),
    kind=st.sampled_from(sorted(LOOK_ALIKES)),
    scheme=SCHEMES,
    path=PATHS,
    network=NETWORKS,
)
def test_a_link_on_a_look_alike_host_is_rejected(host, kind, scheme, path, network):
    raw = f"{scheme}{LOOK_ALIKES[kind](host)}{path}"
    assert is_rejected(parse_connection_link(network, raw))


@pytest.mark.parametrize(
    "raw", ["vk.com.evil.io", "notvk.com", "evilvk.com", "vk.co", "https://t.me", "x.com/vk.com"]
)
def test_the_contracts_look_alikes_of_vk_are_rejected(raw):
    assert is_rejected(parse_connection_link(SocialNetwork.VK, raw))


@prop
@given(link=links(), scheme=st.sampled_from(["ftp://", "file://", "ws://", "wss://", "git://"]))
def test_a_link_with_a_scheme_other_than_http_or_https_is_rejected(link, scheme):
    network, raw = link
    rest = raw.split("://", 1)[-1]
    assert is_rejected(parse_connection_link(network, scheme + rest))


@pytest.mark.parametrize(
    "raw",
    [
        "javascript:alert(1)",
        "javascript:vk.com/durov",
        "javascript://vk.com/%0aalert(1)",
        "JavaScript://vk.com/",
        "data:text/html,vk.com",
        "mailto:durov@vk.com",
        "vbscript:vk.com",
    ],
)
def test_script_data_and_mail_links_are_rejected(raw):
    assert is_rejected(parse_connection_link(SocialNetwork.VK, raw))


@prop
@given(link=links(), userinfo=st.sampled_from(["user@", "user:pass@", ":@", "vk.com@"]))
def test_a_link_carrying_user_info_is_rejected(link, userinfo):
    network, raw = link
    scheme, sep, rest = raw.rpartition("://")
    assert is_rejected(parse_connection_link(network, f"{scheme}{sep}{userinfo}{rest}"))


@prop
@given(network=NETWORKS, evil=st.sampled_from(["evil.io", "attacker.example", "127.0.0.1"]))
def test_a_link_whose_host_hides_another_host_behind_a_backslash_is_rejected(network, evil):
    # Browsers read "\" as "/" in http(s) links: https://evil.io\.vk.com/ opens evil.io.
    host = SOCIAL_NETWORK_HOSTS[network][0]
    for raw in (f"https://{evil}\\.{host}/", f"{evil}\\.{host}", f"http://{evil}\\x.{host}/p"):
        assert is_rejected(parse_connection_link(network, raw)), raw


def test_a_link_whose_host_has_a_character_forbidden_in_host_names_is_rejected():
    # The WHATWG URL standard forbids these in a domain: no browser opens such a link as
    # a page of the network.
    accepted = [
        raw
        for char in ["%2f", "%5c", "<", ">", "^", "|", "%", "\\"]
        if not is_rejected(
            parse_connection_link(SocialNetwork.VK, raw := f"https://evil.io{char}.vk.com/")
        )
    ]
    assert accepted == []


@pytest.mark.parametrize("raw", ["", "   ", "\t\n", "https://", "http://", "//vk.com/x"])
def test_an_empty_or_hostless_link_is_rejected(raw):
    assert is_rejected(parse_connection_link(SocialNetwork.VK, raw))


@prop
@given(link=links(), space=st.sampled_from([" ", "\t", "\n", "\x00", "\x7f"]), data=st.data())
def test_a_link_with_inner_spaces_or_control_characters_is_rejected(link, space, data):
    network, raw = link
    at = data.draw(st.integers(1, len(raw) - 1))
    assert is_rejected(parse_connection_link(network, raw[:at] + space + raw[at:]))


def test_a_link_of_2048_characters_is_accepted_and_a_longer_one_is_rejected():
    base = "https://vk.com/"
    assert isinstance(
        parse_connection_link(SocialNetwork.VK, base + "a" * (2048 - len(base))), Success
    )
    assert is_rejected(parse_connection_link(SocialNetwork.VK, base + "a" * (2049 - len(base))))
    assert LINK_MAX_LENGTH == 2048
