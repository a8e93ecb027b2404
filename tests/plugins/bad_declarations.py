"""Workloads whose declaration() is invalid, each in one way: `validate` must reject them with one
line naming the plugin, before anything runs."""

from __future__ import annotations

from profiler.plugin import Declaration
from profiler.plugin import Params as BaseParams


class _Runs:
    """Everything but the declaration is fine."""

    class Params(BaseParams):
        pass

    def __init__(self, params: BaseParams) -> None:
        self.p = params

    def setup(self, ctx) -> None:
        pass

    def run_once(self, mark) -> None:
        with mark("step", units=1):
            pass

    def teardown(self) -> None:
        pass


class StepIsIteration(_Runs):
    """Names the runner's reserved `iteration` span as its step."""

    @classmethod
    def declaration(cls, params: BaseParams) -> Declaration:
        return Declaration(step="iteration")


class UnknownTrait(_Runs):
    """Declares a trait that does not exist (a dict, as a plugin without the import might return)."""

    @classmethod
    def declaration(cls, params: BaseParams) -> dict:
        return {"step": "step", "traits": ["autoregressive", "telepathic"]}


class NotADeclaration(_Runs):
    """Returns something that is neither a Declaration nor a dict."""

    @classmethod
    def declaration(cls, params: BaseParams) -> str:
        return "step"
