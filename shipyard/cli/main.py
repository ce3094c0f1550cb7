"""Entry point of the ``shipyard`` command: groups, and how errors reach the terminal.

Known errors print their headline, message and hint and exit with the error's exit code;
anything else prints "Internal error" with the traceback and where to report it.
"""

from __future__ import annotations

import sys

import typer

from shipyard.cli import (
    artifacts,
    audit,
    auth,
    deploy,
    experiments,
    features,
    models,
    monitor,
    pipelines,
    runs,
    serve,
    server,
    users,
    workspaces,
)

app = typer.Typer(
    name="shipyard",
    help="Shipyard: tracking, registry, pipelines, features, serving and monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("server")(server.serve)
app.add_typer(experiments.app, name="experiments", help="Create and list experiments.")
app.add_typer(runs.app, name="runs", help="List, inspect and compare runs.")
app.add_typer(models.app, name="models", help="Registered models, versions, aliases, gates.")
app.add_typer(artifacts.app, name="artifacts", help="List and download run artifacts.")
app.add_typer(workspaces.app, name="workspaces", help="Create and list workspaces.")
app.command("login")(auth.login)
app.command("logout")(auth.logout)
app.command("whoami")(auth.whoami)
app.add_typer(users.app, name="users", help="Users: create, list, disable, enable, set roles.")
app.add_typer(
    users.service_accounts_app, name="service-accounts", help="Service accounts for automation."
)
app.add_typer(users.api_keys_app, name="api-keys", help="Create, list and revoke API keys.")
app.add_typer(users.keys_app, name="keys", help="Rotate the keys that sign access tokens.")
app.add_typer(audit.app, name="audit", help="Verify and export the tamper-evident audit log.")
app.command("serve")(serve.serve)
app.add_typer(pipelines.app, name="pipelines", help="Run, schedule and compile pipelines.")
app.add_typer(features.app, name="features", help="Feature definitions, stores and streams.")
app.add_typer(monitor.app, name="monitor", help="Drift monitors, reports, alerts, dashboards.")
app.add_typer(deploy.app, name="deploy", help="Render and apply deployment artifacts.")


@app.command("version")
def version() -> None:
    """Print Shipyard's version."""
    from shipyard import __version__

    typer.echo(__version__)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, translating Shipyard errors into readable messages and exit codes."""
    from shipyard.errors import ShipyardError

    try:
        app(args=argv, standalone_mode=False)
    except ShipyardError as exc:
        from shipyard.cli._common import err_console

        err_console.print(f"[bold red]{exc.headline}:[/bold red] {exc.message}")
        if exc.hint:
            err_console.print(f"[yellow]Hint:[/yellow] {exc.hint}")
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # Usage errors (click's, or the copy of click that typer vendors) know how to show
        # themselves and carry their exit code.
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        import traceback

        traceback.print_exc()
        print(
            "Internal error: this is a bug in Shipyard. Please report it with the traceback "
            "above at the project's issue tracker.",
            file=sys.stderr,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
