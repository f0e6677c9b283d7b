"""usersvc: the users microservice."""

from importlib.metadata import version

__version__ = version("usersvc")
