"""The contract's §4 tables, written out once for every test suite.

Written from the contract (docs/api.md), never taken from the code the tests check.
"""

# Event name → the keys of its ``data``.
EVENT_DATA_KEYS: dict[str, set[str]] = {
    "UserCreated": {"firstname", "lastname", "middlename", "email", "phone", "status"},
    "UserRecovered": {"status"},
    "UserTemporarilyDeleted": {"status", "deleted_at"},
    "UserPermanentlyDeleted": {"linked_account_ids"},
    "FullnameChanged": {"firstname", "lastname", "middlename"},
    "ContactsChanged": {"email", "phone"},
    "LinkedAccountCreated": {
        "linked_account_id",
        "social_network",
        "connection_link",
        "connected_for",
        "connected_at",
    },
    "LinkedAccountDeleted": {"linked_account_id", "social_network"},
    "ConnectionReasonChanged": {"linked_account_id", "connected_for"},
}

# What a permanent deletion erases from the user's events still in the outbox.
PERSONAL_DATA: set[str] = {
    "firstname",
    "lastname",
    "middlename",
    "email",
    "phone",
    "connection_link",
    "connected_for",
}
