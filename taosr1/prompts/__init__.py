"""Prompts for TaoSR1-style relevance: the instruction, untrusted-text escaping, the five-step CoT, and parsing."""

from taosr1.prompts.cot import CotSteps, ParseResult, format_completion, parse_completion
from taosr1.prompts.template import PROMPT_VERSION, build_messages, label_token_ids, render_prompt

__all__ = ["PROMPT_VERSION", "CotSteps", "ParseResult", "build_messages", "format_completion", "label_token_ids",
           "parse_completion", "render_prompt"]
