"""The records of the contract (§2): a user, their fullname, contacts and linked accounts."""

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from attrs import evolve, frozen


class UserStatus(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"  # temporarily: the user can be recovered


class SocialNetwork(StrEnum):
    VK = "vk"
    TELEGRAM = "telegram"
    DISCORD = "discord"
    TIKTOK = "tiktok"
    INSTAGRAM = "instagram"
    TWITTER = "twitter"


# A link belongs to a network when its host is one of these or a subdomain of one.
SOCIAL_NETWORK_HOSTS: Mapping[SocialNetwork, tuple[str, ...]] = {
    SocialNetwork.VK: ("vk.com", "vk.ru", "vkontakte.ru"),
    SocialNetwork.TELEGRAM: ("t.me", "telegram.me", "telegram.org"),
    SocialNetwork.DISCORD: ("discord.com", "discord.gg", "discordapp.com"),
    SocialNetwork.TIKTOK: ("tiktok.com",),
    SocialNetwork.INSTAGRAM: ("instagram.com", "instagr.am"),
    SocialNetwork.TWITTER: ("twitter.com", "x.com"),
}


@frozen
class Fullname:
    firstname: str
    lastname: str
    middlename: str | None


@frozen
class Contacts:
    """At least one of the two is set; ``email`` is normalised (domain lower-cased)."""

    email: str | None
    phone: int | None


@frozen
class ConnectionLink:
    """A link as stored and returned (``url``) and the key that makes two links the same."""

    url: str
    key: str


@frozen
class LinkedAccount:
    linked_account_id: UUID
    social_network: SocialNetwork
    connection_link: ConnectionLink
    connected_for: str | None
    connected_at: datetime


@frozen
class User:
    user_id: UUID
    fullname: Fullname
    contacts: Contacts
    status: UserStatus
    created_at: datetime
    deleted_at: datetime | None
    linked_accounts: tuple[LinkedAccount, ...]  # oldest connection first
    # Each change increments it: clients send it back in If-Match, consumers of the
    # events drop what is older than what they hold.
    version: int = 1

    def linked_account(self, linked_account_id: UUID) -> LinkedAccount | None:
        return next(
            (a for a in self.linked_accounts if a.linked_account_id == linked_account_id), None
        )

    def replace_linked_account(self, account: LinkedAccount) -> "User":
        return evolve(
            self,
            linked_accounts=tuple(
                account if a.linked_account_id == account.linked_account_id else a
                for a in self.linked_accounts
            ),
        )
