"""`services/agent/serve.yaml` is a valid Ray Serve config whose application builds from `mor.serve`.

Ray reads its token settings when it is first imported in a process, so these tests import Ray only after the
session's cluster fixture has set them (importing it at collection time would break every later cluster test).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from mor.cluster import ClusterInfo
from mor.serve import DEPLOYMENT_NAME, ServeArgs, app_builder, build_app, digest_key

CONFIG = Path(__file__).resolve().parents[2] / "services" / "agent" / "serve.yaml"


def test_the_config_is_valid_for_serve_deploy(local_cluster: ClusterInfo) -> None:
    from ray.serve.schema import ServeDeploySchema

    text = CONFIG.read_text()
    assert text.startswith("# The served MoR agent") and "serve deploy services/agent/serve.yaml" in text
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    (application,) = config.applications
    module, name = application.import_path.split(":")
    assert getattr(importlib.import_module(module), name) is app_builder
    args = ServeArgs.model_validate(application.args)
    assert args.model_uri == "models:/mor-agent@champion" and args.batching == "cross-role"
    assert [d.name for d in application.deployments] == [DEPLOYMENT_NAME]
    assert config.http_options.host == "127.0.0.1"


def test_the_builder_generates_a_key_when_none_is_set(
    local_cluster: ClusterInfo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MOR_API_KEYS", raising=False)
    application = app_builder({"model_uri": "models:/mor-agent@champion"})
    printed = capsys.readouterr().out
    assert "no MOR_API_KEYS set; generated API key: mor-" in printed
    key = printed.strip().rsplit(" ", 1)[1]
    bound = application._bound_deployment
    assert bound.name == DEPLOYMENT_NAME and bound.max_ongoing_requests == 256
    assert bound.init_args[0]["api_key_digests"] == [digest_key(key)]
    assert key not in str(bound.init_args)


def test_keys_from_the_environment_and_no_open_server(
    local_cluster: ClusterInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOR_API_KEYS", "first-key-123,second-key-456")
    bound = app_builder({"model_uri": "x", "max_batch_size": 8})._bound_deployment
    assert bound.init_args[0]["api_key_digests"] == [digest_key("first-key-123"), digest_key("second-key-456")]
    with pytest.raises(ValueError, match="never runs open"):
        build_app(ServeArgs(model_uri="x"))
    with pytest.raises(ValueError, match="max_batch_size"):
        app_builder({"model_uri": "x", "max_batch_size": 0})
    with pytest.raises(ValueError, match="extra"):
        app_builder({"model_uri": "x", "replicas": 2})
