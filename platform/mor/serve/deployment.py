"""The Ray Serve application: `build_app(args)` (code) and `app_builder` (the `import_path` of the serve config).

Replicas, resources and autoscaling belong in `services/agent/serve.yaml`; the defaults here suit one CPU replica.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mor.serve.args import ServeArgs
from mor.serve.auth import API_KEYS_ENV, KeySet, digest_key, resolve_api_keys

__all__ = ["DEPLOYMENT_NAME", "AgentServer", "app_builder", "build_app"]

DEPLOYMENT_NAME = "MoRAgent"
_LOG = logging.getLogger("ray.serve")
_DEFAULT_OPTIONS: dict[str, Any] = {
    "max_ongoing_requests": 256,  # requests wait in the engine's queue, where they batch, not in Serve's
    "ray_actor_options": {"num_cpus": 1},
    "health_check_period_s": 10,
    "max_constructor_retry_count": 1,
}


class AgentServer:
    """One replica: loads the agent, starts its decoding engine, serves the OpenAI API (`build_api`)."""

    def __init__(self, args: dict[str, Any]) -> None:
        from mor.serve.loader import build_runtime, load_agent
        from mor.settings import Settings

        self.args = ServeArgs.model_validate(args)
        digests = list(self.args.api_key_digests)
        if not digests and os.environ.get(API_KEYS_ENV):
            keys, _ = resolve_api_keys(None, os.environ)
            digests = [digest_key(key) for key in keys]
        self.keys = KeySet(tuple(digests))
        loaded = load_agent(self.args.model_uri, Settings())
        self.runtime = build_runtime(loaded.model, loaded.tokenizer, self.args, name=loaded.name)
        self.runtime.accept_model_names(self.args.model_uri)

    def __serve_build_asgi_app__(self) -> Any:
        from mor.serve.api import build_api

        return build_api(self.runtime, self.keys)

    def check_health(self) -> None:
        """Ray Serve's health check: the engine thread must be alive."""
        if not self.runtime.engine.alive:
            raise RuntimeError("the decoding engine thread is not running")

    def __del__(self) -> None:
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.engine.close(timeout_s=2.0)


def build_app(args: ServeArgs, **deployment_options: Any) -> Any:
    """The Ray Serve application of the agent (`serve.run(build_app(args))`); `args.api_key_digests` must be set
    (mor serve fills it), options override the deployment defaults (e.g. `num_replicas=2`)."""
    from ray import serve

    if not args.api_key_digests:
        raise ValueError(
            "api_key_digests: got none; the agent never runs open. Pass keys through "
            "mor.serve.resolve_api_keys + digest_key"
        )
    options = {**_DEFAULT_OPTIONS, **deployment_options}
    deployment = serve.deployment(name=DEPLOYMENT_NAME, **options)(serve.ingress()(AgentServer))
    return deployment.bind(args.model_dump())


def app_builder(config: dict[str, Any]) -> Any:
    """Application builder for `serve deploy` / `serve run`: `args:` of the config are `ServeArgs` fields.

    Keys come from `MOR_API_KEYS` (e.g. the application's runtime_env); with none, a key is generated and logged
    once here, so every replica accepts the same key.
    """
    args = ServeArgs.model_validate(config)
    if not args.api_key_digests:
        keys, generated = resolve_api_keys(None, os.environ)
        if generated:
            message = f"mor agent: no {API_KEYS_ENV} set; generated API key: {keys[0]}"
            print(message, flush=True)
            _LOG.warning(message)
        args = args.model_copy(update={"api_key_digests": [digest_key(key) for key in keys]})
    return build_app(args)
