"""The functional core: records, value rules and one pure function per command.

Nothing in this package does I/O, reads a clock or makes an id: the shell passes
``now`` and new ids in (see :class:`usersvc.domain.commands.Stamp`).
"""
