"""Shipyard with authentication on: a platform server that requires a login, its first admin
from a random SHIPYARD_ADMIN_PASSWORD, a data scientist and a predictor service account,
the SDK working through the server, a refused write, and an audit log check.

Everything happens in a fresh folder (``<home>/secure-demo``) with its own database, so
the identities of your real SHIPYARD_HOME are never touched. Run it alone::

    .venv/bin/python examples/secure_platform.py

or through ``examples/quickstart.py``, which calls :func:`main` at its end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard._http import HttpSession
from shipyard.client import Client
from shipyard.config import load_settings
from shipyard.credentials import CredentialStore, login
from shipyard.errors import PermissionDeniedError
from shipyard.testing import ServerProcess

# Only what a server and the CLI need; anything else of the caller's (a SHIPYARD_URL,
# SHIPYARD_TOKEN or SHIPYARD_DB) must not leak into the demo.
_OWN_VARS = ("SHIPYARD_URL", "SHIPYARD_TOKEN", "SHIPYARD_DB", "SHIPYARD_ARTIFACTS")


def say(message: str) -> None:
    print(f"\n==> {message}")


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block (ServerProcess passes them on)."""
    saved = {key: os.environ.get(key) for key in (*values, *_OWN_VARS)}
    for key in _OWN_VARS:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def shipyard_cli(demo_home: Path, url: str, *args: str, stdin: str | None = None) -> str:
    """Run ``shipyard ARGS`` as an operator would, against the demo server; echo it."""
    print(f"    $ shipyard {' '.join(args)}")
    env = {k: v for k, v in os.environ.items() if k not in _OWN_VARS}
    env |= {"SHIPYARD_HOME": str(demo_home), "SHIPYARD_URL": url, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    for line in (done.stdout + done.stderr).strip().splitlines():
        print(f"      {line}")
    if done.returncode != 0:
        raise SystemExit(f"`shipyard {args[0]}` failed with exit code {done.returncode}")
    return done.stdout


def _secret_from(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"{label}: "):
            return line.split(": ", 1)[1].strip()
    raise RuntimeError(f"no {label} in the command's output")


def main(home: Path) -> None:
    """Run the secure-platform tour in ``home/secure-demo`` (wiped first)."""
    demo_home = Path(home) / "secure-demo"
    shutil.rmtree(demo_home, ignore_errors=True)
    demo_home.mkdir(parents=True)
    admin_password = secrets.token_urlsafe(18)

    say("Starting a platform server with auth on (SHIPYARD_AUTH=on) on 127.0.0.1")
    print(f"    first admin: 'admin', SHIPYARD_ADMIN_PASSWORD={admin_password}  (shown once)")
    with _environment(
        SHIPYARD_HOME=str(demo_home),
        SHIPYARD_AUTH="on",
        SHIPYARD_ADMIN_PASSWORD=admin_password,
    ):
        server = ServerProcess(load_settings(home=demo_home))
        server.start()
    try:
        url = server.base_url
        print(f"    listening on {url}; every /api call now needs a bearer token")
        _tour(demo_home, url, admin_password)
    finally:
        server.close()


def _tour(demo_home: Path, url: str, admin_password: str) -> None:
    say("The admin logs in and creates a data scientist and a predictor service account")
    shipyard_cli(
        demo_home, url, "login", "--username", "admin", "--password-stdin", stdin=admin_password
    )
    ann_password = secrets.token_urlsafe(18)
    shipyard_cli(
        demo_home,
        url,
        "users",
        "create",
        "ann",
        "--role",
        "data-scientist",
        "--password-stdin",
        stdin=ann_password,
    )
    created = shipyard_cli(
        demo_home, url, "service-accounts", "create", "predictor", "--role", "predictor"
    )
    predictor_secret = _secret_from(created, "client_secret")

    say("Ann trains and registers a model through the server (SDK, password login)")
    ann = login(url, username="ann", password=ann_password)
    with HttpSession(url, credentials=ann) as http:
        client = Client(load_settings(home=demo_home, url=url), http=http)
        experiment_id = client.create_experiment("secure-demo")
        run = client.create_run(experiment_id, run_name="ann-baseline")
        x = np.random.default_rng(0).normal(size=(200, 4))
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        model = LogisticRegression().fit(x, y)
        client.log_metric(run.info.run_id, "accuracy", float(model.score(x, y)))
        info = shipyard.log_model(
            model,
            "model",
            registered_model_name="secure-demo",
            run_id=run.info.run_id,
            client=client,
        )
        client.set_terminated(run.info.run_id)
        version = info.registered_model_version
        print(f"    run {run.info.run_id} logged; registered secure-demo v{version}")

    say("The admin's SDK uses the login `shipyard login` saved (refreshed when it expires)")
    with HttpSession(url, credential_store=CredentialStore(demo_home)) as http:
        models = Client(load_settings(home=demo_home, url=url), http=http).registry
        names = [m.name for m in models.list_registered_models()]
        print(f"    registered models: {names}")

    say("The predictor logs in with its client secret: it may read models, not change them")
    predictor = login(url, client_id="predictor", client_secret=predictor_secret)
    with HttpSession(url, credentials=predictor) as http:
        registry = Client(load_settings(home=demo_home, url=url), http=http).registry
        version = registry.get_model_version("secure-demo", 1)
        print(f"    reads secure-demo v{version.version} ({version.flavor})")
        try:
            registry.set_alias("secure-demo", "champion", 1)
        except PermissionDeniedError as refused:
            print(f"    moving @champion refused ({refused.http_status}): {refused.message}")
        else:
            raise SystemExit("the predictor was allowed to move an alias: auth is not working")

    say("Every login, identity change and write is in the hash-chained audit log")
    shipyard_cli(demo_home, url, "audit", "verify")
    shipyard_cli(demo_home, url, "logout")

    say("Try it yourself")
    print("    SHIPYARD_AUTH=on SHIPYARD_ADMIN_PASSWORD='<long random password>' shipyard server")
    print("    shipyard login --url http://127.0.0.1:5005 --username admin")
    print("    shipyard users create alice --role data-scientist")
    print("    shipyard audit export --since 2026-01-01 --format csv --out audit.csv")


if __name__ == "__main__":
    main(load_settings().home)
