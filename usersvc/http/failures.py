"""The one table from domain failures to HTTP status, contract code and message."""

from collections.abc import Mapping

from attrs import frozen

from usersvc.domain import failures as f


@frozen
class ErrorInfo:
    status: int
    code: str
    message: str


FAILURES: Mapping[type, ErrorInfo] = {
    f.UserNotFound: ErrorInfo(404, "user_not_found", "User not found"),
    f.UserAlreadyActive: ErrorInfo(400, "user_already_active", "User is already active"),
    f.UserAlreadyDeleted: ErrorInfo(
        400, "user_already_deleted", "User is already temporarily deleted"
    ),
    f.UserDeleted: ErrorInfo(400, "user_deleted", "User is temporarily deleted"),
    f.UserAlreadyExists: ErrorInfo(409, "user_already_exists", "User already exists"),
    f.InvalidContacts: ErrorInfo(422, "invalid_contacts", "Invalid contacts"),
    f.InvalidFullname: ErrorInfo(422, "invalid_fullname", "Invalid fullname"),
    f.LinkNotOfSocialNetwork: ErrorInfo(
        422, "link_not_of_social_network", "Connection link does not belong to the social network"
    ),
    f.InvalidConnectionReason: ErrorInfo(
        422, "invalid_connection_reason", "Invalid connection reason"
    ),
    f.LinkedAccountAlreadyExists: ErrorInfo(
        409, "linked_account_already_exists", "Linked account already exists"
    ),
    f.LinkedAccountNotFound: ErrorInfo(404, "linked_account_not_found", "Linked account not found"),
}


def describe(failure: f.DomainFailure) -> tuple[ErrorInfo, str]:
    """The failure's table row and its message, with the failure's own detail where it has one."""
    info = FAILURES[type(failure)]
    detail = getattr(failure, "reason", None)
    if isinstance(failure, f.UserAlreadyExists):
        detail = f"another user has this {failure.field}"
    return info, info.message if detail is None else f"{info.message}: {detail}"
