"""MLflow tracking and model registry for mor (the only package that imports mlflow).

- `TrackingSession`: one run per job: flattened spec params, batched per-step metrics, artifacts, end status.
- `register_agent` / `resolve_model`: agent versions (base reference + weights, per-role adapters, tokenizer,
  spec) in the model registry, with aliases; `models:/name@alias` back to local files.
"""

from mor.registry.agent import STATUS_TAG, RegisteredAgent, register_agent, resolve_model, unregister_agent
from mor.registry.client import (
    experiment_artifact_location,
    get_or_create_experiment,
    tracking_client,
    tracking_ui_command,
)
from mor.registry.errors import RegistryError
from mor.registry.layout import (
    MANIFEST_FILE,
    BaseModelRef,
    LocalAgentDir,
    SavesPretrained,
    read_agent_dir,
    write_agent_dir,
)
from mor.registry.params import MAX_PARAM_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH, TRUNCATION_MARK, flatten_params
from mor.registry.tracking import JOB_ID_TAG, RunEndStatus, TrackingSession, end_open_runs

__all__ = [
    "JOB_ID_TAG",
    "MANIFEST_FILE",
    "MAX_PARAM_KEY_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "STATUS_TAG",
    "TRUNCATION_MARK",
    "BaseModelRef",
    "LocalAgentDir",
    "RegisteredAgent",
    "RegistryError",
    "RunEndStatus",
    "SavesPretrained",
    "TrackingSession",
    "end_open_runs",
    "experiment_artifact_location",
    "flatten_params",
    "get_or_create_experiment",
    "read_agent_dir",
    "register_agent",
    "resolve_model",
    "tracking_client",
    "tracking_ui_command",
    "unregister_agent",
    "write_agent_dir",
]
