"""The served agent: an OpenAI-compatible `/v1/chat/completions` with tool calling on Ray Serve.

The role gate runs inside each request (reasoner → executor's calls returned as `tool_calls`, or summarizer's
answer as `content`); executor and reasoner output is constrained while decoding (valid calls, a valid handover);
one engine per replica batches decoding steps of all requests, rows of different roles in the same forward.

```python
from mor.serve import ServeArgs, build_app, digest_key

app = build_app(ServeArgs(model_uri="models:/mor-agent@champion", api_key_digests=[digest_key(key)]))
```
"""

from mor.serve.api import build_api
from mor.serve.args import ServeArgs
from mor.serve.auth import API_KEYS_ENV, KeySet, digest_key, generate_key, resolve_api_keys
from mor.serve.constrain import CallsConstraint, ReasonerConstraint, TextConstraint, TokenConstraint, Vocabulary
from mor.serve.deployment import DEPLOYMENT_NAME, AgentServer, app_builder, build_app
from mor.serve.engine import BatchEngine, BatchingMode, EngineStats, GenerationJob, GenerationResult, Sampling
from mor.serve.errors import APIError, error_body
from mor.serve.loader import LoadedAgent, build_runtime, load_agent
from mor.serve.protocol import ChatRequest, parse_chat_request
from mor.serve.runtime import AgentRuntime
from mor.serve.textstream import TextAssembler

__all__ = [
    "API_KEYS_ENV",
    "DEPLOYMENT_NAME",
    "APIError",
    "AgentRuntime",
    "AgentServer",
    "BatchEngine",
    "BatchingMode",
    "CallsConstraint",
    "ChatRequest",
    "EngineStats",
    "GenerationJob",
    "GenerationResult",
    "KeySet",
    "LoadedAgent",
    "ReasonerConstraint",
    "Sampling",
    "ServeArgs",
    "TextAssembler",
    "TextConstraint",
    "TokenConstraint",
    "Vocabulary",
    "app_builder",
    "build_api",
    "build_app",
    "build_runtime",
    "digest_key",
    "error_body",
    "generate_key",
    "load_agent",
    "parse_chat_request",
    "resolve_api_keys",
]
