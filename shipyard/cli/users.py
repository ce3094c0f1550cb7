"""``shipyard users``, ``service-accounts``, ``api-keys`` and ``keys``: identities, their
roles, API keys and the token signing keys.

Every command acts on the local metadata DB when ``SHIPYARD_URL`` is unset (how the
first admin is created: ``shipyard users create admin --role admin``) and on the server
as the logged-in user when it is set.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli._common import console, err_console, fmt_time, render_table
from shipyard.cli.auth import read_secret

if TYPE_CHECKING:
    from shipyard.cli._security import SecurityAdmin

app = typer.Typer(no_args_is_help=True)
service_accounts_app = typer.Typer(no_args_is_help=True)
api_keys_app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(no_args_is_help=True)

_ROLES = "admin, maintainer, data-scientist, viewer or predictor"

RoleOption = Annotated[str, typer.Option("--role", "-r", help=f"Role: {_ROLES}.")]
MemberWorkspaceOption = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Hold the role in this workspace only (default: site-wide, in every workspace).",
    ),
]
PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from stdin instead of prompting."),
]


@contextmanager
def _admin() -> Iterator[SecurityAdmin]:
    from shipyard.cli._security import open_admin
    from shipyard.config import load_settings

    with open_admin(load_settings()) as admin:
        yield admin


def _check_role(role: str) -> str:
    from shipyard.security.rbac import check_role

    check_role(role)
    return role


def _when(ms: int | None) -> str:
    from shipyard.tracking.entities import ms_to_datetime

    return fmt_time(ms_to_datetime(ms)) if ms else "-"


def _scope(workspace: str | None) -> str:
    return f"in workspace '{workspace}'" if workspace else "in every workspace"


def _show_secret_once(label: str, value: str, what: str) -> None:
    # The secret alone on stdout (scripts can capture it); the warning on stderr.
    console.print(f"{label}: {value}", soft_wrap=True, highlight=False)
    err_console.print(
        f"[bold yellow]Warning:[/bold yellow] this is the only time the {what} is shown; "
        "Shipyard keeps only its hash. Store it in a secret manager now."
    )


# -- users ---------------------------------------------------------------------------------


@app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: RoleOption,
    workspace: MemberWorkspaceOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Create a user; the password is prompted twice (or read from stdin)."""
    from shipyard.security.users import check_principal_name

    check_principal_name(name)
    _check_role(role)
    with _admin() as admin:
        password = read_secret(f"Password for {name}", stdin=password_stdin, confirm=True)
        admin.create_user(name, password, role, workspace)
    console.print(
        f"Created user [bold]{name}[/bold] with role {role} {_scope(workspace)} ({admin.where})."
    )


@app.command("list")
def list_users() -> None:
    """List users with their site-wide and workspace roles."""
    with _admin() as admin:
        found = admin.list_users()
    render_table(
        "Users",
        ("name", "role", "workspace roles", "status", "created"),
        (
            (
                user.name,
                user.role or "-",
                ", ".join(f"{m.workspace}={m.role}" for m in memberships) or "-",
                "disabled" if user.disabled else "active",
                _when(user.created_at),
            )
            for user, memberships in found
        ),
    )


@app.command("disable")
def disable_user(name: str) -> None:
    """Disable a user: its tokens stop working at once and it cannot log in."""
    with _admin() as admin:
        admin.set_user_disabled(name, True)
    console.print(f"Disabled user [bold]{name}[/bold]; its sessions are revoked.")


@app.command("enable")
def enable_user(name: str) -> None:
    """Enable a disabled user again (it logs in anew)."""
    with _admin() as admin:
        admin.set_user_disabled(name, False)
    console.print(f"Enabled user [bold]{name}[/bold].")


@app.command("set-role")
def set_role(
    name: Annotated[
        str, typer.Argument(help="A user name, or user:<name> / sa:<name> for service accounts.")
    ],
    role: Annotated[str, typer.Argument(help=f"Role: {_ROLES}.")],
    workspace: MemberWorkspaceOption = None,
) -> None:
    """Give a user (or service account) a role, site-wide or in one workspace."""
    _check_role(role)
    with _admin() as admin:
        admin.set_role(name, role, workspace)
    console.print(f"{name} now has role {role} {_scope(workspace)}.")


@app.command("set-password")
def set_password(name: str, password_stdin: PasswordStdinOption = False) -> None:
    """Replace a user's password; its current sessions end."""
    with _admin() as admin:
        password = read_secret(f"New password for {name}", stdin=password_stdin, confirm=True)
        admin.set_password(name, password)
    console.print(f"Password of [bold]{name}[/bold] changed; its sessions are revoked.")


@app.command("unlock")
def unlock(name: str) -> None:
    """Lift the login lockout of a user (after too many failed logins)."""
    with _admin() as admin:
        admin.unlock(name)
    console.print(f"Logins for {name} are unlocked.")


# -- service accounts ----------------------------------------------------------------------


@service_accounts_app.command("create")
def create_service_account(
    name: Annotated[str, typer.Argument(help="The account's name, which is its client id.")],
    role: RoleOption,
    workspace: MemberWorkspaceOption = None,
    description: Annotated[str, typer.Option(help="What the account is for.")] = "",
) -> None:
    """Create a service account and print its client secret, once."""
    _check_role(role)
    with _admin() as admin:
        account, secret = admin.create_service_account(name, role, workspace, description)
    console.print(
        f"Created service account [bold]{account.name}[/bold] with role {role} "
        f"{_scope(workspace)} ({admin.where})."
    )
    console.print(f"client_id: {account.name}", highlight=False)
    _show_secret_once("client_secret", secret, "client secret")
    err_console.print(
        f"Log in with: shipyard login --client-id {account.name} --password-stdin "
        "(the secret on stdin)"
    )


@service_accounts_app.command("list")
def list_service_accounts() -> None:
    """List service accounts."""
    with _admin() as admin:
        accounts = admin.list_service_accounts()
    render_table(
        "Service accounts",
        ("name", "role", "status", "description", "created"),
        (
            (
                a.name,
                a.role or "-",
                "disabled" if a.disabled else "active",
                a.description,
                _when(a.created_at),
            )
            for a in accounts
        ),
    )


@service_accounts_app.command("rotate-secret")
def rotate_secret(name: str) -> None:
    """Give a service account a new client secret (printed once); the old one and the
    tokens issued with it stop working."""
    with _admin() as admin:
        secret = admin.rotate_service_account_secret(name)
    console.print(f"New client secret for service account [bold]{name}[/bold].")
    _show_secret_once("client_secret", secret, "client secret")


# -- API keys ------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90d``, ``12h``, ``30m``, ``3600`` or ``3600s``."""
    from shipyard.errors import InvalidArgumentError

    match = _DURATION.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise InvalidArgumentError(
            f"Invalid duration {text!r}.", hint="Write e.g. 90d, 12h, 30m or 3600 (seconds)."
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


OwnerOption = Annotated[
    str | None,
    typer.Option(
        "--owner",
        help="user:<name> or sa:<name> (default on a server: yourself; required locally).",
    ),
]


@api_keys_app.command("create")
def create_api_key(
    owner: OwnerOption = None,
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key by.")] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Limit the key to resource:action (repeatable), e.g. models:read.",
        ),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="e.g. 90d, 12h (default: never).")
    ] = None,
) -> None:
    """Create an API key (``shy_...``) and print it, once. Send it as a bearer token or in
    SHIPYARD_TOKEN."""
    seconds = parse_duration(expires_in) if expires_in else None
    with _admin() as admin:
        info, key = admin.create_api_key(owner, name, scope or None, seconds)
    owner_id = f"{'sa' if info.principal_type == 'service_account' else 'user'}:"
    console.print(
        f"Created API key {info.key_id} for {owner_id}{info.principal_name}"
        + (f" (expires {_when(info.expires_at)})" if info.expires_at else "")
        + "."
    )
    _show_secret_once("key", key, "API key")


@api_keys_app.command("list")
def list_api_keys(
    owner: OwnerOption = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every owner's keys (admins; always so locally).")
    ] = False,
) -> None:
    """List API keys (never their secrets)."""

    def status(revoked_at: int | None, expires_at: int | None) -> str:
        import time

        if revoked_at:
            return "revoked"
        if expires_at and expires_at <= time.time() * 1000:
            return "expired"
        return "active"

    with _admin() as admin:
        keys = admin.list_api_keys(owner, every=every)
    render_table(
        "API keys",
        ("key id", "owner", "name", "scopes", "status", "created", "expires", "last used"),
        (
            (
                k.key_id,
                f"{'sa' if k.principal_type == 'service_account' else 'user'}:{k.principal_name}",
                k.name or "-",
                " ".join(sorted(k.scopes)) if k.scopes is not None else "all",
                status(k.revoked_at, k.expires_at),
                _when(k.created_at),
                _when(k.expires_at),
                _when(k.last_used_at),
            )
            for k in keys
        ),
    )


@api_keys_app.command("revoke")
def revoke_api_key(key_id: Annotated[str, typer.Argument(help="The key id (see `list`).")]) -> None:
    """Revoke an API key for good."""
    with _admin() as admin:
        admin.revoke_api_key(key_id)
    console.print(f"Revoked API key {key_id}.")


# -- signing keys --------------------------------------------------------------------------


@keys_app.command("rotate")
def rotate() -> None:
    """Start signing access tokens with a new key (RS256/ES256); tokens signed with the old
    one stay valid until they expire."""
    with _admin() as admin:
        kid = admin.rotate_signing_key()
    console.print(f"Now signing with key {kid}; the previous key verifies until its tokens expire.")
