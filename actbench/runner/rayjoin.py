"""How the Ray executor gets its Ray: joins a cluster at `--address` (reachable within
CONNECT_TIMEOUT_S, with token authentication whenever a token is available) or starts an embedded
one on this machine with a fresh private token; plugin modules travel with the job."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import sysconfig
from pathlib import Path
from typing import Any, Callable

import ray
from ray.exceptions import RayError

from actbench.errors import UserError

CONNECT_TIMEOUT_S = 5.0
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
"""The environment variables `join_or_start` may set (the executor restores them when it ends)."""


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address: HOST:PORT, ray://HOST:PORT, or `auto` (the cluster Ray
    would pick: RAY_ADDRESS, else the last `ray start` on this machine)."""
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            address = canonicalize_bootstrap_address("auto") or ""
        except (ConnectionError, ValueError) as e:
            raise UserError(f"--address auto: {str(e).splitlines()[0]}") from None
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    return (host.strip("[]"), int(port)) if sep and port.isdigit() else None


def unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why nothing accepts a TCP connection at host:port, or None when something does."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return e.strerror or str(e) or type(e).__name__


def refresh_auth() -> None:
    """Make Ray (already imported) re-read RAY_AUTH_MODE and its token."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").exists())


def _plugins_env() -> dict[str, Any] | None:
    """The job's runtime environment: every plugin module that registered activations, as its
    top-level module (a .py file) or package (a folder), unless it is an installed package
    (assumed installed on every node); Ray uploads them to every worker, on any node."""
    from actbench.activations.registry import plugin_modules

    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    out: set[str] = set()
    for name in plugin_modules():
        top = sys.modules.get(name.split(".")[0])
        file = getattr(top, "__file__", None)
        if top is None or not file or any(Path(file).resolve().is_relative_to(s) for s in site):
            continue
        paths = list(getattr(top, "__path__", []))
        out.add(paths[0] if len(paths) == 1 else file)
    return {"py_modules": sorted(out)} if out else None


def join_or_start(address: str | None, log_to_driver: bool, init_kwargs: dict[str, Any], restore_env: Callable[[], None]) -> tuple[str, bool]:
    """Make Ray ready in this process: (how, whether this process started it). The Ray already
    initialised here is used as it is; `address` is joined; else an embedded Ray is started
    (`init_kwargs` go to `ray.init`). `restore_env` undoes AUTH_ENV when joining fails."""
    if ray.is_initialized():
        return "the Ray instance already running in this process", False
    if address:
        target = host_port(address)
        if target and (why := unreachable(*target, CONNECT_TIMEOUT_S)):
            raise UserError(f"--address {address}: nothing accepts connections at {target[0]}:{target[1]} ({why}); "
                            "is the cluster up and the port right?")
        if "RAY_AUTH_MODE" not in os.environ and _token_available():
            os.environ["RAY_AUTH_MODE"] = "token"
            refresh_auth()
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=log_to_driver, runtime_env=_plugins_env())
        except (ConnectionError, RuntimeError, ValueError, RayError) as e:
            restore_env()
            raise UserError(f"--address {address}: cannot join the Ray cluster: {str(e).strip().splitlines()[0]} "
                            "(a cluster with token authentication needs its token here: RAY_AUTH_TOKEN or ~/.ray/auth_token)") from e
        return f"joined the Ray cluster at {gcs_address() or address}", False
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    refresh_auth()
    init_kwargs.setdefault("num_cpus", os.cpu_count())
    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=log_to_driver, runtime_env=_plugins_env(),
             **init_kwargs)
    return "embedded Ray on this machine (private token)", True


def gcs_address() -> str | None:
    """The GCS address of the Ray this process is connected to (None through Ray Client)."""
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - Ray Client has no GCS address here
        return None
