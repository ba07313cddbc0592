"""`ServeArgs`: what the served agent is built from (code); replicas and resources live in the serve config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ServeArgs"]


class ServeArgs(BaseModel):
    """Arguments of `build_app`; also the `args:` of the application in `services/agent/serve.yaml`."""

    model_config = ConfigDict(extra="forbid")

    model_uri: str = Field(
        min_length=1,
        description="The agent: models:/name@alias, models:/name/N, runs:/<run>/<path> or a local agent directory.",
    )
    served_model_name: str | None = Field(
        default=None,
        description="The model id clients send and /v1/models lists; default the registered model name "
        "(or the agent directory's name).",
    )
    api_key_digests: list[str] = Field(
        default_factory=list,
        description="SHA-256 hex digests of the accepted API keys (mor serve fills this from --api-key / "
        "MOR_API_KEYS; the serve config reads MOR_API_KEYS instead).",
    )
    batching: Literal["cross-role", "same-role", "off"] = Field(
        default="cross-role",
        description="cross-role: rows of any role share a forward; same-role: one role per forward; off: one "
        "sequence at a time.",
    )
    max_batch_size: int = Field(default=32, ge=1, le=1024, description="Rows decoded together at most.")
    max_prefill_tokens: int = Field(default=8192, ge=16, description="Padded prompt tokens of one prefill forward.")
    max_steps: int = Field(
        default=8, ge=1, le=64, description="Reasoner turns in a conversation before the summarizer must answer."
    )
    max_calls: int = Field(
        default=8, ge=1, le=256, description="Function calls in a conversation before the summarizer must answer."
    )
    role_max_tokens: dict[str, int] = Field(
        default_factory=lambda: {"reasoner": 96, "executor": 256, "summarizer": 256},
        description="Most tokens one turn of a role generates (a request's role_max_tokens field overrides); the "
        "summarizer's bounds the answer of a request that sets no max_tokens.",
    )
    default_role_max_tokens: int = Field(default=128, ge=1, description="Budget of a role not in role_max_tokens.")
    max_completion_tokens: int = Field(
        default=1024,
        ge=1,
        description="Most tokens one request generates in all roles together: the largest max_tokens / "
        "max_completion_tokens a request may ask, and the budget of one that asks none.",
    )
    max_context_tokens: int | None = Field(
        default=None,
        ge=16,
        description="Prompt + new tokens of one role turn at most; default the model's max_position_embeddings.",
    )
    max_request_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body accepted.")
    thought_in_content: bool = Field(
        default=True,
        description="Also return the reasoner's thought as the content of tool-call messages (it always is in "
        "reasoning_content), so clients that echo messages back keep it in the conversation.",
    )
    torch_threads: int | None = Field(default=None, ge=1, description="torch intra-op threads of the replica.")

    @model_validator(mode="after")
    def _check(self) -> ServeArgs:
        bad = {role: value for role, value in self.role_max_tokens.items() if value < 1}
        if bad:
            raise ValueError(f"role_max_tokens: got {bad}, every budget must be ≥ 1; e.g. {{'reasoner': 96}}")
        digests = [d for d in self.api_key_digests if len(d) != 64 or any(c not in "0123456789abcdef" for c in d)]
        if digests:
            raise ValueError(
                "api_key_digests: entries must be 64 lowercase hex characters (sha256 of a key); "
                "use mor.serve.digest_key(key)"
            )
        return self

    def role_budget(self, role: str) -> int:
        """Token budget of one turn of `role`."""
        return int(self.role_max_tokens.get(role, self.default_role_max_tokens))
