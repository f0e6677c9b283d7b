"""The user as the API shows it (§2): flat, every field, linked accounts oldest first."""

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


def etag(version: int) -> dict[str, str]:
    """The user's version as a strong entity tag, the value If-Match sends back."""
    return {"ETag": f'"{version}"'}
