"""The user as the API shows it (§2): flat, every field, linked accounts oldest first."""

from collections.abc import Mapping
from typing import Any

from cattrs import Converter

from usersvc.domain.model import ConnectionLink, User

# UUIDs and datetimes pass through as they are: the JSON encoder writes them.
converter = Converter()
# A link shows as the URL that was sent; its key is the database's business.
converter.register_unstructure_hook(ConnectionLink, lambda link: link.url)


def present_user(user: User) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "status": user.status,
        "created_at": user.created_at,
        "deleted_at": user.deleted_at,
        "firstname": user.fullname.firstname,
        "lastname": user.fullname.lastname,
        "middlename": user.fullname.middlename,
        "email": user.contacts.email,
        "phone": user.contacts.phone,
        "linked_accounts": [converter.unstructure(a) for a in user.linked_accounts],
        "version": user.version,
    }


def present_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`present_user` of the user this row holds (``sql/users.sql``'s
    ``load_user`` columns), without the record made first: a read needs only its shape,
    and the record cost more than the rest of the presenting.
    ``tests/api/test_presenters.py`` holds the two equal."""
    accounts = row["linked_accounts"]
    return {
        "user_id": row["user_id"],
        "status": row["status"],
        "created_at": row["created_at"],
        "deleted_at": row["deleted_at"],
        "firstname": row["firstname"],
        "lastname": row["lastname"],
        "middlename": row["middlename"],
        "email": row["email"],
        "phone": row["phone"],
        "linked_accounts": [
            {
                "linked_account_id": account["linked_account_id"],
                "social_network": account["social_network"],
                "connection_link": account["connection_link"],
                "connected_for": account["connected_for"],
                "connected_at": account["connected_at"],
            }
            for account in accounts
        ]
        if accounts
        else [],
        "version": row["version"],
    }


def etag(version: int) -> dict[str, str]:
    """The user's version as a strong entity tag, the value If-Match sends back."""
    return {"ETag": f'"{version}"'}
