"""The contract's §4 tables, written out once for every test suite.

Written from the contract (docs/api.md), never taken from the code the tests check.
"""

# Event name → the keys of its ``data``.
# Every event carries the version of the user that its change produced.
EVENT_DATA_KEYS: dict[str, set[str]] = {
    "UserCreated": {"version", "firstname", "lastname", "middlename", "email", "phone", "status"},
    "UserRecovered": {"version", "status"},
    "UserTemporarilyDeleted": {"version", "status", "deleted_at"},
    "UserPermanentlyDeleted": {"version", "linked_account_ids"},
    "FullnameChanged": {"version", "firstname", "lastname", "middlename"},
    "ContactsChanged": {"version", "email", "phone"},
    "LinkedAccountCreated": {
        "version",
        "linked_account_id",
        "social_network",
        "connection_link",
        "connected_for",
        "connected_at",
    },
    "LinkedAccountDeleted": {"version", "linked_account_id", "social_network"},
    "ConnectionReasonChanged": {"version", "linked_account_id", "connected_for"},
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
