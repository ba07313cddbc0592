"""The role-gated agent: a loop over role generators (plain HF or MoR), parsing of role outputs, and the
single-step API over OpenAI chat messages."""

from mor.agent.build import AgentFiles, build_agent, load_agent, load_agent_model
from mor.agent.gate import GatePolicy, RoleGate
from mor.agent.generator import BatchRoleGenerator, HFRoleGenerator, MoRRoleGenerator, Prompt, RoleGenerator
from mor.agent.loop import Agent, AgentAction, AgentConfig, AgentFailure, AgentRun, AgentTask, ExecuteTool
from mor.agent.messages import messages_to_trajectory, tool_calls_message
from mor.agent.parse import ParseFailure, parse_calls, parse_reasoner
from mor.agent.replay import ReplayGenerator

__all__ = [
    "Agent",
    "AgentAction",
    "AgentConfig",
    "AgentFailure",
    "AgentFiles",
    "AgentRun",
    "AgentTask",
    "BatchRoleGenerator",
    "ExecuteTool",
    "GatePolicy",
    "HFRoleGenerator",
    "MoRRoleGenerator",
    "ParseFailure",
    "Prompt",
    "ReplayGenerator",
    "RoleGate",
    "RoleGenerator",
    "build_agent",
    "load_agent",
    "load_agent_model",
    "messages_to_trajectory",
    "parse_calls",
    "parse_reasoner",
    "tool_calls_message",
]
