"""``shipyard login``, ``logout`` and ``whoami``: the login the SDK and CLI use for a server.

The tokens are saved per server URL in ``SHIPYARD_HOME/credentials.json`` (mode 0600);
the SDK sends them whenever ``SHIPYARD_URL`` names that server and ``SHIPYARD_TOKEN`` is
unset, and refreshes the access token as it expires.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from shipyard.cli._common import console, err_console

UrlOption = Annotated[str | None, typer.Option("--url", help="Server URL (default: SHIPYARD_URL).")]


def read_secret(prompt: str, *, stdin: bool, confirm: bool = False) -> str:
    """A password or secret: one line from stdin, or typed at a prompt without echo."""
    from shipyard.errors import InvalidArgumentError

    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise InvalidArgumentError(
                "Nothing was read from stdin.",
                hint="Pipe it in, e.g. `printenv PASSWORD | shipyard ... --password-stdin`.",
            )
        return value
    if confirm:
        return str(
            typer.prompt(prompt, hide_input=True, confirmation_prompt=f"Repeat {prompt.lower()}")
        )
    return str(typer.prompt(prompt, hide_input=True))


def _target(url: str | None) -> tuple[Any, str]:
    from shipyard.config import load_settings
    from shipyard.credentials import normalize_url
    from shipyard.errors import InvalidArgumentError

    settings = load_settings()
    target = url or settings.url
    if not target:
        raise InvalidArgumentError(
            "No server given.", hint="Pass --url http://host:5005, or set SHIPYARD_URL."
        )
    return settings, normalize_url(target)


def _lifetime(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.0f} s"


def login(
    url: UrlOption = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="User name (prompted when omitted).")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password (or client secret) from stdin."),
    ] = False,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Log in as this service account.")
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(
            "--client-secret",
            envvar="SHIPYARD_CLIENT_SECRET",
            help="The service account's secret (prompted when omitted; prefer the env var).",
        ),
    ] = None,
) -> None:
    """Log in to a platform server and save the tokens for the SDK and CLI."""
    from shipyard.credentials import CredentialStore, normalize_url
    from shipyard.credentials import login as do_login
    from shipyard.errors import InvalidArgumentError

    settings, target = _target(url)
    store = CredentialStore(settings.home)
    if client_id is not None:
        if username is not None:
            raise InvalidArgumentError("Log in with --username or with --client-id, not both.")
        secret = client_secret or read_secret("Client secret", stdin=password_stdin)
        credentials = do_login(
            target,
            client_id=client_id,
            client_secret=secret,
            store=store,
            timeout=settings.http_timeout,
        )
    else:
        if username is None:
            if password_stdin:
                raise InvalidArgumentError("--password-stdin needs --username.")
            username = str(typer.prompt("Username"))
        password = read_secret("Password", stdin=password_stdin)
        credentials = do_login(
            target, username=username, password=password, store=store, timeout=settings.http_timeout
        )
    console.print(f"Logged in to {credentials.url} as [bold]{credentials.principal}[/bold].")
    if credentials.expires_at is not None:
        lifetime = _lifetime(credentials.expires_at - time.time())
        renewal = (
            "renewed automatically"
            if credentials.refresh_token
            else "log in again then, or use an API key in SHIPYARD_TOKEN"
        )
        console.print(f"The access token lasts {lifetime}; {renewal}.")
    console.print(f"Saved to {store.path} (readable by you only).")
    if settings.token is not None:
        err_console.print(
            "[yellow]Note:[/yellow] SHIPYARD_TOKEN is set and is sent instead of this login; "
            "unset it to use the login."
        )
    if not settings.url or normalize_url(settings.url) != credentials.url:
        err_console.print(
            f"[yellow]Note:[/yellow] the SDK uses this login when SHIPYARD_URL is set: "
            f"export SHIPYARD_URL={credentials.url}"
        )


def logout(url: UrlOption = None) -> None:
    """Revoke the saved login's session on the server and delete it locally."""
    from shipyard.credentials import CredentialStore
    from shipyard.credentials import logout as do_logout

    settings, target = _target(url)
    if do_logout(target, CredentialStore(settings.home), timeout=settings.http_timeout):
        console.print(f"Logged out of {target}.")
    else:
        console.print(f"Not logged in to {target}.")


def whoami(url: UrlOption = None) -> None:
    """Show who the SDK and CLI act as on the server, with roles per workspace."""
    from shipyard._http import HttpSession
    from shipyard.config import load_settings

    settings = load_settings()
    if not (url or settings.url):
        from shipyard.store.db import mask_url

        console.print(
            f"No server: SHIPYARD_URL is not set, so commands act directly on the local "
            f"database {mask_url(settings.db)} (no login involved)."
        )
        return
    if url:
        settings = load_settings(url=url)
    with HttpSession.from_settings(settings) as http:
        me = http.get("/auth/me") or {}
    if me.get("auth") == "off":
        console.print(f"{settings.url} does not check credentials (auth is off).")
        return
    role = me.get("role")
    console.print(
        f"[bold]{me['id']}[/bold] on {settings.url}"
        + (f", site-wide role {role}" if role else ", no site-wide role"),
        highlight=False,
    )
    for workspace, held in sorted((me.get("roles") or {}).items()):
        console.print(f"  workspace {workspace}: {', '.join(held)}", highlight=False)
    if me.get("teams"):
        console.print(f"  teams: {', '.join(me['teams'])}", highlight=False)
    if me.get("scopes") is not None:
        console.print(f"  limited to scopes: {' '.join(me['scopes'])}", highlight=False)
    console.print(f"  authenticated with: {me.get('auth')}", highlight=False)
