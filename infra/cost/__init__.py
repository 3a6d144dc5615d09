"""Cost review of billing cells: monthly cost and cost per million events, from stack outputs."""

from infra.cost.inputs import (
    CostError,
    CostInputs,
    cost_inputs_of_outputs,
    parse_cost_inputs,
    read_stack_output,
)
from infra.cost.measured import Figures, load_figures
from infra.cost.model import StackCost, Unpriced, estimate
from infra.cost.prices import PriceBook, load_price_book, load_references

__all__ = [
    "CostError",
    "CostInputs",
    "Figures",
    "PriceBook",
    "StackCost",
    "Unpriced",
    "cost_inputs_of_outputs",
    "estimate",
    "load_figures",
    "load_price_book",
    "load_references",
    "parse_cost_inputs",
    "read_stack_output",
]
