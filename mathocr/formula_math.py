"""What sympy makes of a recognized formula: simplified, evaluated, or solved for an equation.

``sympy_reading`` never raises: a formula sympy cannot read (most handwriting is not a complete
computation) gives ``None``, and the page says so quietly. Sympy's work runs in a worker thread
with a time limit, since simplifying can take very long on odd input.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="sympy")


@dataclass
class SympyReading:
    parsed: str  # sympy's LaTeX of what it read
    kind: str  # "equation", "relation", "expression"
    result_label: str  # "solved for x", "simplified", "value"...
    result: str  # LaTeX of the result ("" when there is none)


def _read(latex: str) -> SympyReading | None:
    import sympy
    from sympy.parsing.latex import parse_latex

    expr = parse_latex(latex)
    if isinstance(expr, sympy.logic.boolalg.BooleanAtom):  # 2 + 2 = 4 is decided while parsing
        return SympyReading(latex, "equation", "holds", r"\text{true}" if expr else r"\text{false}")
    if isinstance(expr, sympy.Equality):
        free = sorted(expr.free_symbols, key=lambda s: s.name)
        if not free:
            truth = sympy.simplify(expr.lhs - expr.rhs) == 0
            return SympyReading(sympy.latex(expr), "equation", "holds", r"\text{true}" if truth else r"\text{false}")
        target = next((s for s in free if s.name in ("x", "y", "z", "t", "n")), free[0])
        solutions = sympy.solve(expr, target)
        result = ", ".join(f"{sympy.latex(target)} = {sympy.latex(s)}" for s in solutions) or r"\text{no solution}"
        return SympyReading(sympy.latex(expr), "equation", f"solved for {target}", result)
    if isinstance(expr, sympy.core.relational.Relational):
        return SympyReading(sympy.latex(expr), "relation", "simplified", sympy.latex(sympy.simplify(expr)))
    if not isinstance(expr, sympy.Basic):
        return None
    if not expr.free_symbols:
        value = sympy.nsimplify(expr) if expr.is_number else expr
        numeric = sympy.N(expr, 10)
        exact = sympy.simplify(value)
        result = sympy.latex(exact)
        if exact != numeric and numeric.is_number:
            result += r" \approx " + sympy.latex(numeric)
        return SympyReading(sympy.latex(expr), "expression", "value", result)
    return SympyReading(sympy.latex(expr), "expression", "simplified", sympy.latex(sympy.simplify(expr)))


def sympy_reading(latex: str, timeout: float = 3.0) -> SympyReading | None:
    """Sympy's reading of ``latex``, or ``None`` when it cannot read it (or takes too long)."""
    if not latex.strip():
        return None
    future = _POOL.submit(_read, latex)
    try:
        return future.result(timeout=timeout)
    except Exception:  # noqa: BLE001 - parse errors, sympy's own failures and the time limit alike
        return None
