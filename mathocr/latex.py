"""LaTeX tokens, one canonical normal form, and token vocabularies.

CROHME's truths spell the same formula many ways (``$x^{2}$``, ``x^2``, ``{x}^{ 2 }``), and a
recognizer must not be punished for picking another spelling. Everything the models learn from
and everything the metrics compare goes through ``normalize_tokens``, whose output is the
*canonical form*:

* Tokens: a command (``\\alpha``), an escaped character (``\\{``), an environment delimiter
  (``\\begin{array}``), or one single character (``x``, ``2``, ``+``; ``46`` is two tokens).
  Tokens are joined by one space.
* Dropped: ``$``, spacing (``\\,`` ``\\;`` ``\\:`` ``\\!`` ``\\quad`` ``~`` ...), ``\\limits``,
  ``\\nolimits``, ``\\displaystyle``, size and pairing prefixes of delimiters (``\\left``,
  ``\\right``, ``\\big``, ``\\Bigg`` ...; ``\\left(`` becomes ``(``, ``\\left.`` disappears).
* One spelling per symbol: ``\\lt`` is ``<``, ``\\gt`` is ``>``, ``\\le`` is ``\\leq``, ``\\ge`` is
  ``\\geq``, ``\\ne`` is ``\\neq``, ``\\dots`` and ``\\cdots`` are ``\\ldots`` (CROHME's truths use
  both for the one symbol its segmentation labels ``\\ldots``), ``\\to`` is ``\\rightarrow``,
  ``\\lbrace`` is ``\\{`` (see ``ALIASES``); ``\\dfrac`` and ``\\tfrac`` are ``\\frac``.
* Text wrappers are unwrapped: ``\\mbox { n v }`` is ``n v`` (``\\mbox``, ``\\text``, ``\\mathrm``,
  ``\\textrm``, ``\\mathit``, ``\\rm``).
* Every argument is braced: ``\\frac 1 2`` is ``\\frac { 1 } { 2 }``, ``x^2`` is ``x ^ { 2 }``,
  ``\\sqrt x`` is ``\\sqrt { x }``; ``{a \\over b}`` is ``\\frac { a } { b }``.
* A base with both scripts writes the subscript first: ``x ^ { 2 } _ { i }`` is ``x _ { i } ^ { 2 }``.
* Braces that are not an argument are removed: ``{ p } ^ { y }`` is ``p ^ { y }``; so are doubled
  braces around an argument (``x ^ { { 2 } }``).
* Typeset (im2latex) spellings: old font switches act on the rest of their group, so
  ``{ \\cal L }`` is ``\\mathcal { L }`` (``\\bf``, ``\\Bbb``, ``\\sf``, ``\\tt`` likewise; ``\\it`` is
  unwrapped); ``\\sp`` and ``\\sb`` are ``^`` and ``_``; ``\\hspace { 1 cm }`` is dropped with its length,
  as are size switches (``\\scriptsize``); ``\\phantom``, ``\\mathop`` and the like keep their braced argument.
* A prime is a superscript: ``f'``, ``f^{'}`` and ``f ^ { \\prime }`` are all ``f ^ { \\prime }``.

Normalising is idempotent, and never raises on unbalanced input unless ``strict=True``: a model's
output may be malformed and still has to be scored.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

_TOKEN_RE = re.compile(
    r"\\(?:begin|end)\s*\{\s*[a-zA-Z*]+\s*\}"  # \begin{array} as one token
    r"|\\[a-zA-Z]+\*?"  # commands, \operatorname*
    r"|\\[\s\S]"  # escaped characters (a backslash before any space is a control space): \{ \, \\ \|
    r"|\S",  # any other single character
)

_GLUED_RE = re.compile(r"\\[lg]t[a-zA-Z]+")
_REAL_LT_GT = {"\\ltimes", "\\gtrsim", "\\gtrless", "\\gtreqless", "\\gtrapprox", "\\gtrdot"}

ALIASES = {
    "\\lt": "<", "\\gt": ">", "\\le": "\\leq", "\\ge": "\\geq", "\\ne": "\\neq",
    "\\leqslant": "\\leq", "\\geqslant": "\\geq", "\\dots": "\\ldots", "\\to": "\\rightarrow",
    "\\gets": "\\leftarrow", "\\cdots": "\\ldots", "\\lbrace": "\\{", "\\rbrace": "\\}", "\\lbrack": "[", "\\rbrack": "]",
    "\\vert": "|", "\\ast": "*", "\\dfrac": "\\frac", "\\tfrac": "\\frac", "\\colon": ":",
    "\\lvert": "|", "\\rvert": "|", "\\Vert": "\\|", "\\sp": "^", "\\sb": "_",
}
DROPPED = {
    "$", "~", "\\,", "\\;", "\\:", "\\!", "\\ ", "\\quad", "\\qquad", "\\limits", "\\nolimits",
    "\\displaystyle", "\\textstyle", "\\scriptstyle", "\\scriptscriptstyle", "\\rm", "\\hfill",
    "\\scriptsize", "\\footnotesize", "\\small", "\\normalsize", "\\large", "\\Large", "\\huge", "\\Huge",
}
DROPPED_WITH_ARGUMENT = {"\\hspace", "\\hspace*", "\\vspace", "\\vspace*"}
# Old-style font switches act on the rest of their group: ``{ \cal L }`` is ``\mathcal { L }``
# (None: the switch only changes the text style, like \mathrm, and is unwrapped)
SWITCHES = {
    "\\cal": "\\mathcal", "\\bf": "\\mathbf", "\\Bbb": "\\mathbb", "\\sf": "\\mathsf", "\\tt": "\\mathtt",
    "\\frak": "\\mathfrak", "\\boldmath": "\\boldsymbol", "\\it": None, "\\sl": None, "\\em": None,
}
DELIMITER_PREFIXES = {
    "\\left", "\\right", "\\middle", "\\big", "\\Big", "\\bigg", "\\Bigg", "\\bigl", "\\bigr",
    "\\Bigl", "\\Bigr", "\\biggl", "\\biggr", "\\Biggl", "\\Biggr", "\\bigm", "\\Bigm", "\\biggm",
    "\\Biggm",
}
UNWRAPPED = {"\\mbox", "\\text", "\\mathrm", "\\textrm", "\\mathit", "\\textit", "\\hbox", "\\textnormal",
             "\\ensuremath"}
ARITY = {
    "\\frac": 2, "\\binom": 2, "\\stackrel": 2, "\\overset": 2, "\\underset": 2, "\\sqrt": 1,
    "\\hat": 1, "\\widehat": 1, "\\bar": 1, "\\overline": 1, "\\underline": 1, "\\vec": 1,
    "\\tilde": 1, "\\widetilde": 1, "\\dot": 1, "\\ddot": 1, "\\check": 1, "\\breve": 1,
    "\\acute": 1, "\\grave": 1, "\\mathbf": 1, "\\mathcal": 1, "\\mathbb": 1, "\\mathsf": 1,
    "\\mathtt": 1, "\\mathfrak": 1, "\\boldsymbol": 1, "\\operatorname": 1,
    "\\operatorname*": 1, "\\overrightarrow": 1, "\\overleftarrow": 1, "\\underbrace": 1,
    "\\overbrace": 1, "\\textbf": 1, "\\pmb": 1,
    # commands of typeset formulas (im2latex)
    "\\phantom": 1, "\\hphantom": 1, "\\vphantom": 1, "\\fbox": 1, "\\boxed": 1, "\\ref": 1, "\\label": 1,
    "\\mathop": 1, "\\mathrel": 1, "\\mathbin": 1, "\\mathord": 1, "\\mathscr": 1, "\\bm": 1,
    "\\textsf": 1, "\\texttt": 1, "\\textup": 1, "\\emph": 1, "\\dddot": 1, "\\lefteqn": 1,
    "\\xrightarrow": 1, "\\xleftarrow": 1, "\\cancel": 1,
}


class LatexError(ValueError):
    """Unbalanced braces or a missing argument, raised only in strict mode."""


def tokenize_latex(text: str) -> list[str]:
    """Split LaTeX into tokens (commands, escaped characters, single characters).

    Works the same on raw LaTeX (``\\frac{1}{2}``) and on im2latex's space-separated formulas.
    """
    tokens = []
    for match in _TOKEN_RE.finditer(text):
        token = match.group(0)
        if token.startswith(("\\begin", "\\end")) and "{" in token:
            token = re.sub(r"\s+", "", token)
        elif _GLUED_RE.fullmatch(token) and token not in _REAL_LT_GT:
            # CROHME writes "\ltq" for "\lt q": split the alias from the letters glued to it
            tokens.append(token[:3])
            tokens.extend(token[3:])
            continue
        if len(token) == 2 and token[0] == "\\" and token[1].isspace():
            token = "\\ "  # a backslash before a newline or tab is the control space, as before a space
        tokens.append(token)
    return tokens


# The parse tree: a node is a token (str), or one of these.
@dataclass
class _Cmd:
    name: str
    args: list[list]
    optional: list | None = None


@dataclass
class _Scripted:
    base: object | None
    sub: list | None = None
    sup: list | None = None


class _Parser:
    def __init__(self, tokens: Sequence[str], strict: bool):
        self.tokens = list(tokens)
        self.pos = 0
        self.strict = strict

    def fail(self, message: str):
        if self.strict:
            raise LatexError(f"{message} at token {self.pos}: {' '.join(self.tokens)}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | None:
        token = self.peek()
        self.pos += 1
        return token

    def parse_sequence(self, closing: str | None) -> list:
        """Items up to ``closing`` (consumed) or the end; handles ``\\over`` at this level."""
        items: list = []
        over_at = None
        while True:
            token = self.peek()
            if token is None:
                if closing is not None:
                    self.fail(f"missing {closing!r}")
                break
            if token == closing:
                self.pos += 1
                break
            if token == "}" and closing != "}":
                self.fail("unmatched '}'")
                self.pos += 1
                continue
            if token == "\\over":
                self.pos += 1
                over_at = len(items)
                continue
            if token in SWITCHES:  # the switch takes the rest of this group
                self.pos += 1
                rest = self.parse_sequence(closing)
                if SWITCHES[token]:
                    items.append(_Cmd(SWITCHES[token], [rest]))
                else:
                    items.extend(rest)
                break
            self.parse_item(items)
        if over_at is not None:
            return [_Cmd("\\frac", [items[:over_at], items[over_at:]])]
        return items

    def parse_argument(self) -> list:
        """One argument: a braced group, or the next atom (a token, or a command with its arguments)."""
        while self.peek() in DROPPED:
            self.pos += 1
        token = self.peek()
        if token in (None, "}", "\\over"):  # \over belongs to the enclosing sequence
            self.fail("missing argument")
            return []
        if token == "{":
            self.pos += 1
            return self.parse_sequence("}")
        items: list = []
        self.parse_item(items, allow_scripts=False)
        return items

    def parse_item(self, items: list, allow_scripts: bool = True) -> None:
        token = self.take()
        token = ALIASES.get(token, token)
        if token in DROPPED:
            return
        if token in DELIMITER_PREFIXES:
            delimiter = ALIASES.get(self.peek(), self.peek())
            if delimiter == ".":
                self.pos += 1
            elif _is_plain(delimiter):
                self.pos += 1
                items.append(delimiter)
            else:  # "\left" at the end, or before a brace or a command: leave that to be parsed
                self.fail(f"missing delimiter after {token}")
            return
        if token in ("^", "_"):
            self.attach_script(items, token, self.parse_argument())
            return
        if token == "'":
            primes = ["\\prime"]
            while self.peek() == "'":
                self.pos += 1
                primes.append("\\prime")
            if items:
                self.attach_script(items, "^", primes)
            else:  # no base here, as inside f^{'}: the primes are the script's content
                items.extend(primes)
            return
        if token == "{":
            # an empty group vanishes: written out, its scripts would join what precedes it anyway
            self.splice(items, self.parse_sequence("}"))
            return
        if token in UNWRAPPED or (token in SWITCHES and SWITCHES[token] is None):
            self.splice(items, self.parse_argument())
            return
        if token in SWITCHES:  # a switch where one argument is expected (x ^ \\bf y)
            items.append(_Cmd(SWITCHES[token], [self.parse_argument()]))
            return
        if token in DROPPED_WITH_ARGUMENT:
            self.parse_argument()
            return
        if token in ARITY:
            optional = None
            if token == "\\sqrt" and self.peek() == "[":
                self.pos += 1
                optional = self.parse_sequence("]")
            args = [self.parse_argument() for _ in range(ARITY[token])]
            items.append(_Cmd(token, args, optional))
            return
        if token.startswith("\\begin{"):
            items.append(token)
            if token in ("\\begin{array}", "\\begin{tabular}") and self.peek() == "{":
                self.pos += 1
                items.append(_Cmd("", [self.parse_sequence("}")]))  # the column spec, kept braced
            return
        items.append(token)

    def splice(self, items: list, group: list) -> None:
        """Add a group's items without its braces. A script that starts the group then attaches
        to what precedes it, as it will when the output is read again (``x{^{\\mu}_{1}}``)."""
        first = group[0] if group else None
        if isinstance(first, _Scripted) and first.base is None and (first.sub, first.sup) != (None, None):
            for kind, argument in (("_", first.sub), ("^", first.sup)):
                if argument is not None:
                    self.attach_script(items, kind, argument)
            group = group[1:]
        items.extend(group)

    def attach_script(self, items: list, kind: str, argument: list) -> None:
        last = items[-1] if items else None
        if isinstance(last, _Scripted) and getattr(last, "sub" if kind == "_" else "sup") is None:
            target = last
            # written out, a subscript comes right after the base's own scripts, so it belongs to
            # the innermost base whose subscript is free (x^{2}^{3}_{i} is x_{i}^{2}^{3})
            while kind == "_" and isinstance(target.base, _Scripted) and target.base.sub is None:
                target = target.base
        elif isinstance(last, _Scripted) and kind == "^" and _all_primes(last.sup) and _all_primes(argument):
            last.sup = last.sup + argument  # f'' and f'^{'}: one superscript of primes
            return
        else:
            target = _Scripted(base=items.pop() if items else None)
            items.append(target)
        if kind == "_":
            target.sub = argument
        else:
            target.sup = argument


def _outside_braces(tokens: list[str], wanted: str) -> bool:
    depth = 0
    for token in tokens:
        depth += (token == "{") - (token == "}")
        if depth == 0 and token == wanted:
            return True
    return False


def _is_plain(token: str | None) -> bool:
    """Whether a token stands for itself (a symbol), rather than shaping what follows it."""
    return token is not None and not (
        token in ("{", "}", "^", "_", "'", "\\over") or token in ARITY or token in UNWRAPPED or token in SWITCHES
        or token in DROPPED_WITH_ARGUMENT
        or token in DROPPED or token in DELIMITER_PREFIXES or token.startswith("\\begin{")
    )


def _all_primes(items: list) -> bool:
    return bool(items) and all(item == "\\prime" for item in items)


def _emit(items: list, out: list[str]) -> None:
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, _Cmd):
            if item.name:
                out.append(item.name)
            if item.optional is not None:
                optional: list[str] = []
                _emit(item.optional, optional)
                if _outside_braces(optional, "]"):  # \sqrt[{]}]{x}: keep it from closing the option
                    optional = ["{", *optional, "}"]
                out.extend(["[", *optional, "]"])
            for arg in item.args:
                out.append("{")
                _emit(arg, out)
                out.append("}")
        elif isinstance(item, _Scripted):
            if item.base is not None:
                _emit([item.base], out)
            for kind, arg in (("_", item.sub), ("^", item.sup)):
                if arg is not None:
                    out.extend([kind, "{"])
                    _emit(arg, out)
                    out.append("}")


def normalize_tokens(tokens: Iterable[str], strict: bool = False) -> list[str]:
    """The canonical form (see the module's docstring) of a token sequence."""
    parser = _Parser(list(tokens), strict)
    items = parser.parse_sequence(None)
    out: list[str] = []
    _emit(items, out)
    return out


def normalize_latex(text: str, strict: bool = False) -> str:
    """The canonical form of a LaTeX string, as one space-separated string."""
    return " ".join(normalize_tokens(tokenize_latex(text), strict=strict))


def normalize_symbol(label: str) -> str:
    """A symbol class label in canonical spelling (``\\lt`` is ``<``)."""
    label = label.strip()
    return ALIASES.get(label, label)


def latex_equal(a: str, b: str) -> bool:
    """Whether two LaTeX strings have the same canonical form."""
    return normalize_latex(a) == normalize_latex(b)


class Vocabulary:
    """Tokens to integer ids and back. Id 0 is padding; ``<s>``, ``</s>``, ``<unk>`` follow."""

    PAD, START, END, UNK = "<pad>", "<s>", "</s>", "<unk>"
    SPECIALS = (PAD, START, END, UNK)

    def __init__(self, tokens: Iterable[str]):
        self.tokens = list(self.SPECIALS) + [t for t in tokens if t not in self.SPECIALS]
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("duplicate tokens in vocabulary")

    @classmethod
    def from_sequences(cls, sequences: Iterable[Sequence[str]], min_count: int = 1) -> "Vocabulary":
        counts = Counter(token for seq in sequences for token in seq)
        kept = [t for t, c in counts.items() if c >= min_count]
        return cls(sorted(kept, key=lambda t: (-counts[t], t)))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def start_id(self) -> int:
        return 1

    @property
    def end_id(self) -> int:
        return 2

    @property
    def unk_id(self) -> int:
        return 3

    def encode(self, tokens: Sequence[str], add_bounds: bool = False) -> list[int]:
        ids = [self.index.get(t, self.unk_id) for t in tokens]
        return [self.start_id, *ids, self.end_id] if add_bounds else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ids, stopping at the end token and skipping padding and the start token."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.end_id:
                break
            if i in (self.pad_id, self.start_id):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else self.UNK)
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"tokens": self.tokens}, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        data = json.loads(Path(path).read_text())
        tokens = data["tokens"]
        if list(tokens[: len(cls.SPECIALS)]) != list(cls.SPECIALS):
            raise ValueError(f"{path}: not a mathocr vocabulary (specials missing)")
        return cls(tokens[len(cls.SPECIALS):])
