"""`mor serve MODEL_URI`: deploy the agent on Ray Serve and stay in the foreground until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from mor.cluster import ClusterError, ensure_local_cluster, job_runtime_env, resolve_token
from mor.settings import Settings

__all__ = ["serve_command"]

_READY_TIMEOUT_S = 60.0


def _fail(console: Console, message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]Error:[/] {escape(message)}")
    return typer.Exit(code)


def _wait_ready(url: str, key: str, app_name: str, timeout_s: float) -> tuple[str | None, str | None]:
    """`(model id, None)` once `GET /v1/models` answers, else `(None, what went wrong)`; a failed deployment ends
    the wait at once."""
    deadline = time.monotonic() + timeout_s
    problem: str | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5.0)
            if response.status_code == 200:
                return response.json()["data"][0]["id"], None
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as error:
            problem = f"{type(error).__name__}: {error}"
        status = _serve_status(app_name)
        if status.startswith(("DEPLOY_FAILED", "UNHEALTHY", "(the application is not deployed)")):
            return None, f"{problem}; {status}"
        time.sleep(0.5)
    return None, f"{problem}; {_serve_status(app_name)}"


def _serve_status(app_name: str) -> str:
    """The application's status and messages, e.g. `DEPLOY_FAILED: replica constructor raised ...`."""
    from ray import serve

    try:
        status = serve.status().applications.get(app_name)
    except Exception as error:  # status is only for the message
        return f"(status unavailable: {error})"
    if status is None:
        return "(the application is not deployed)"
    state = getattr(status.status, "value", str(status.status))
    messages = [m for m in [status.message, *(d.message for d in status.deployments.values())] if m]
    return f"{state}: " + " | ".join(messages) if messages else f"{state} (no message)"


def _stop_on_sigterm() -> dict[signal.Signals, Any]:
    """SIGINT, SIGTERM and SIGHUP end `mor serve` as Ctrl-C does (the application is removed on the way out).
    SIGINT is set too because a process started with it ignored (a shell script's `mor serve &`, a supervisor)
    would otherwise get no Ctrl-C handler from Python and never stop on SIGINT."""

    def interrupt(signum: int, _: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    return {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def serve_command(
    model_uri: Annotated[
        str,
        typer.Argument(
            help="The agent: models:/name@alias, models:/name/N, runs:/<run_id>/<path> or a local agent directory."
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="Interface Ray Serve's HTTP proxy binds.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port of Ray Serve's HTTP proxy; checked first (its holder is named). A running Serve with "
            "another port is restarted on this one when no other application uses it.",
        ),
    ] = 8000,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster address as ray.init takes it (host:port of the GCS, or ray://host:10001); "
            "default RAY_ADDRESS or the embedded local Ray.",
        ),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="Accepted API key, at least 8 characters without spaces or commas (repeatable); default "
            "MOR_API_KEYS (comma-separated), else one is generated and printed.",
        ),
    ] = None,
    batching: Annotated[
        Literal["cross-role", "same-role", "off"],
        typer.Option(
            "--batching",
            help="cross-role: rows of all roles share each forward; same-role: one role per forward; off: one "
            "sequence at a time.",
        ),
    ] = "cross-role",
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", min=1, help="Rows decoded together.")] = 32,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Number of replicas.")] = 1,
    replica_cpus: Annotated[float, typer.Option("--replica-cpus", min=0.0, help="CPUs reserved per replica.")] = 1.0,
    app_name: Annotated[str, typer.Option("--app-name", help="Ray Serve application name.")] = "mor-agent",
    route_prefix: Annotated[str, typer.Option("--route-prefix", help="URL prefix of the application.")] = "/",
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace an application of the same name on the cluster, even one a running mor serve owns.",
        ),
    ] = False,
) -> None:
    """Serve an agent with an OpenAI-compatible /v1/chat/completions (tool calling) until Ctrl-C."""
    from mor.serve import ServeArgs, build_app, digest_key, resolve_api_keys
    from mor.serve.control import ServeCluster, check_port, deploy, undeploy
    from mor.serve.lifecycle import OwnerRecords, ServeConflict, ServeRequest

    console = Console()
    settings = Settings()
    try:
        keys, generated = resolve_api_keys(api_key, os.environ)
        args = ServeArgs(
            model_uri=model_uri,
            api_key_digests=[digest_key(key) for key in keys],
            batching=batching,
            max_batch_size=max_batch_size,
        )  # type: ignore[arg-type]
    except ValueError as error:
        raise _fail(console, str(error), 2) from None
    if not route_prefix.startswith("/"):
        raise _fail(console, f"--route-prefix: got {route_prefix!r}, must start with '/'; e.g. /agent", 2)
    external = address or settings.ray_address
    if external and external.startswith(("http://", "https://")):
        raise _fail(
            console,
            f"--address: got the dashboard URL {external!r}; mor serve joins the cluster as a Ray "
            "driver, so give the cluster address ray.init takes (host:6379, or ray://host:10001)",
            2,
        )
    local = not external
    request = ServeRequest(app_name=app_name, route_prefix=route_prefix, host=host, port=port, replace=replace)
    if local:
        from mor.registry import RegistryError, resolve_model

        try:
            resolve_model(model_uri, settings)  # fail fast here rather than in a replica's log
            check_port(host, port, settings.ray_dir)  # before any cluster is started or anything deployed
        except RegistryError as error:
            raise _fail(console, str(error), 2) from None
        except ServeConflict as error:
            raise _fail(console, str(error)) from None
    try:
        with console.status("Connecting to Ray (starting the embedded local cluster if needed)…"):
            cluster = ensure_local_cluster(settings, address)
    except ClusterError as error:
        raise _fail(console, str(error)) from None
    # Ray reads its token settings once, when it is first imported: set them before that.
    os.environ.update({k: v for k, v in cluster.env().items() if k != "RAY_ADDRESS"})
    import ray
    import ray.serve  # noqa: F401  (configures its logger on import; quieted below)

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # our own lines say what happens
    context = ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    target = ServeCluster(
        address=cluster.address,
        dashboard_url=cluster.dashboard_url if cluster.local else str(context.dashboard_url or cluster.dashboard_url),
        token=cluster.token if cluster.local else resolve_token(os.environ),
        ray_dir=cluster.ray_dir if cluster.local else None,
    )
    records = OwnerRecords(settings.resolved_home / "serve")
    options: dict[str, Any] = {
        "num_replicas": replicas,
        "ray_actor_options": {"num_cpus": replica_cpus, "runtime_env": job_runtime_env(settings, local=cluster.local)},
    }
    prefix = route_prefix.rstrip("/")
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}{prefix}/v1"

    def report(note: str) -> None:
        console.print(escape(note), soft_wrap=True)

    previous = _stop_on_sigterm()
    deploying = False
    try:
        with console.status(f"Deploying {escape(model_uri)} on Ray Serve…"):
            try:
                deploying = True
                deploy(
                    build_app(args, **options),
                    request,
                    cluster=target,
                    records=records,
                    model_uri=model_uri,
                    report=report,
                )
            except ServeConflict as error:
                deploying = False  # refused before anything changed
                raise _fail(console, str(error)) from None
            except httpx.HTTPError as error:
                deploying = False
                raise _fail(
                    console,
                    f"could not read Ray Serve's state from the dashboard at {target.dashboard_url} ({error}); "
                    "mor serve needs the cluster's dashboard to see what Serve already runs",
                ) from None
            except Exception as error:
                raise _fail(console, f"deployment failed: {error}\n{_serve_status(app_name)}") from None
            model_id, problem = _wait_ready(base_url, keys[0], app_name, _READY_TIMEOUT_S)
        if model_id is None:
            raise _fail(console, f"the agent does not answer at {base_url}: {problem}")
        console.print(f"[bold green]Serving[/] {escape(model_uri)} as model [bold]{escape(model_id)}[/]")
        console.print(f"Base URL: [bold]{base_url}[/]", soft_wrap=True)
        if generated:
            console.print(f"API key (generated, none was configured): [bold]{keys[0]}[/]", soft_wrap=True)
        else:
            console.print(f"API keys: {len(keys)} configured (--api-key / MOR_API_KEYS)")
        console.print(
            f"Try: OpenAI(base_url={base_url!r}, api_key=...).chat.completions.create("
            f"model={model_id!r}, messages=[...], tools=[...])",
            soft_wrap=True,
            highlight=False,
        )
        console.print("Press Ctrl-C to stop.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if deploying:
            console.print(f"Stopping {escape(app_name)}…")
            try:
                undeploy(request, cluster=target, records=records, report=report)
            except Exception as error:  # the cluster may be gone already
                console.print(f"[yellow]Could not remove the application:[/] {escape(str(error))}")
        ray.shutdown()
    console.print("Stopped.")
