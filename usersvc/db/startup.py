"""Waiting for the database at start: it may come up after the service (compose, a
restart), so it is tried for a while before the service gives up."""

import asyncio
import ssl
from urllib.parse import urlsplit

import asyncpg

from usersvc.config import SettingError, mask_password

RETRY_INITIAL = 0.25  # seconds; doubled each attempt
RETRY_MAX = 5.0
CONNECT_TIMEOUT = 5.0


class DatabaseUnreachableError(ConnectionError):
    """The database did not answer within the wait; the message shows no password."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _hide(text: str, url: str) -> str:
    """The text with the URL's password, should a driver's message quote it, as ``***``."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


async def wait_for_database(url: str, within: float, setting: str = "USERSVC_DATABASE_URL") -> int:
    """Connect once (then close); retry with backoff for ``within`` seconds.

    Returns the attempts it took. Raises :class:`DatabaseUnreachableError` when the time
    is up, and :class:`SettingError` (naming ``setting``) for a URL the driver refuses
    to use at all.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = RETRY_INITIAL
    attempts = 0
    while True:
        attempts += 1
        try:
            connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        except ssl.SSLCertVerificationError as error:  # the URL's sslrootcert, or the host
            raise SettingError(
                "USERSVC_DATABASE_URL",
                f"the database's TLS certificate is not accepted: {error.verify_message}"
                f" (sslrootcert, sslmode and the host name in {mask_password(url)})",
            ) from None
        except (ValueError, asyncpg.ClientConfigurationError) as error:
            raise SettingError(setting, _hide(str(error), url)) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            if loop.time() + delay > deadline:
                raise DatabaseUnreachableError(
                    f"the database at {mask_password(url)} did not answer "
                    f"in {within:g} s ({attempts} attempts): {_hide(_first_line(error), url)}"
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            continue
        await connection.close()
        return attempts
