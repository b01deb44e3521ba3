"""Scores of recognized formulas against their truths, on canonical token sequences.

* ``expression_rate`` (ExpRate): the fraction recognized exactly, after normalisation.
* ``within_errors(.., k)``: at most ``k`` token errors (substitutions, insertions, deletions), the
  CROHME convention's ``<=1`` and ``<=2`` columns.
* ``bleu4``: corpus BLEU with up to 4-grams and the brevity penalty (Papineni et al. 2002), with
  add-one smoothing of the higher n-gram precisions so short formulas do not zero it.
* ``token_edit_distance``: Levenshtein distance between token sequences.
* ``confusions``: which tokens a recognizer writes for which (substitutions), leaves out (deletions)
  or adds (insertions), counted over the edits that turn each truth into its prediction.
* ``paired_comparison``: two recognizers on the same formulas: who gains and loses which, the exact
  McNemar test and a bootstrap interval of the difference in ExpRate.

Every function takes token lists; ``score_pairs`` normalises LaTeX strings first.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from mathocr.latex import normalize_tokens, tokenize_latex

Tokens = Sequence[str]


def token_edit_distance(a: Tokens, b: Tokens) -> int:
    """Levenshtein distance between two token sequences."""
    a, b = list(a), list(b)
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def edit_operations(truth: Tokens, prediction: Tokens) -> list[tuple[str | None, str | None]]:
    """The edits of one shortest way from ``truth`` to ``prediction``, in order, as ``(truth token,
    predicted token)``: both for a substitution, ``(token, None)`` for a deletion, ``(None, token)``
    for an insertion. Among equally short ways, substitutions are preferred, then deletions."""
    a, b = list(truth), list(prediction)
    cost = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        for j in range(len(b) + 1):
            if i == 0 or j == 0:
                cost[i][j] = i + j
            else:
                cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    ops: list[tuple[str | None, str | None]] = []
    i, j = len(a), len(b)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            if a[i - 1] != b[j - 1]:
                ops.append((a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            ops.append((a[i - 1], None))
            i -= 1
        else:
            ops.append((None, b[j - 1]))
            j -= 1
    return ops[::-1]


def confusions(predictions: Sequence[Tokens], truths: Sequence[Tokens], top: int = 20) -> list[dict]:
    """The ``top`` commonest edits over all formulas (``edit_operations``), commonest first:
    ``{"truth": token or None, "predicted": token or None, "count": n}``. Where a recognizer fails:
    ``x`` read as ``X``, ``\\div`` as ``=``, a ``\\prime`` left out."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} truths")
    counts = Counter(op for p, t in zip(predictions, truths) for op in edit_operations(t, p))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [{"truth": t, "predicted": p, "count": n} for (t, p), n in ranked[:top]]


def expression_rate(predictions: Sequence[Tokens], truths: Sequence[Tokens]) -> float:
    return within_errors(predictions, truths, 0)


def within_errors(predictions: Sequence[Tokens], truths: Sequence[Tokens], k: int) -> float:
    """The fraction of predictions at most ``k`` token edits from their truth."""
    if not truths:
        return 0.0
    return sum(token_edit_distance(p, t) <= k for p, t in zip(predictions, truths)) / len(truths)


def _ngrams(tokens: Tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu4(predictions: Sequence[Tokens], truths: Sequence[Tokens]) -> float:
    """Corpus BLEU-4 in [0, 1] (one reference per prediction)."""
    matches, totals = [0] * 4, [0] * 4
    pred_len = ref_len = 0
    for pred, ref in zip(predictions, truths):
        pred, ref = list(pred), list(ref)
        pred_len += len(pred)
        ref_len += len(ref)
        for n in range(1, 5):
            p_grams, r_grams = _ngrams(pred, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(c, r_grams[g]) for g, c in p_grams.items())
            totals[n - 1] += max(len(pred) - n + 1, 0)
    if pred_len == 0 or matches[0] == 0:
        return 0.0
    log_precision = math.log(matches[0] / totals[0])
    for n in range(1, 4):  # add-one smoothing above unigrams
        log_precision += math.log((matches[n] + 1) / (totals[n] + 1))
    brevity = 1.0 if pred_len > ref_len else math.exp(1 - ref_len / pred_len)
    return brevity * math.exp(log_precision / 4)


@dataclass
class FormulaScores:
    n: int
    exprate: float
    le1: float
    le2: float
    bleu4: float
    token_edit_distance: float  # mean per formula
    token_error_rate: float  # edits / truth tokens

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def score_tokens(predictions: Sequence[Tokens], truths: Sequence[Tokens]) -> FormulaScores:
    """All the scores of predicted against true canonical token sequences."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} truths")
    distances = [token_edit_distance(p, t) for p, t in zip(predictions, truths)]
    n = len(truths)
    truth_tokens = sum(len(t) for t in truths)
    return FormulaScores(
        n=n,
        exprate=sum(d == 0 for d in distances) / n if n else 0.0,
        le1=sum(d <= 1 for d in distances) / n if n else 0.0,
        le2=sum(d <= 2 for d in distances) / n if n else 0.0,
        bleu4=bleu4(predictions, truths),
        token_edit_distance=sum(distances) / n if n else 0.0,
        token_error_rate=sum(distances) / truth_tokens if truth_tokens else 0.0,
    )


def score_pairs(predictions: Sequence[str], truths: Sequence[str]) -> FormulaScores:
    """Scores of LaTeX strings, each normalised to its canonical tokens first."""
    canon = lambda text: normalize_tokens(tokenize_latex(text))  # noqa: E731
    return score_tokens([canon(p) for p in predictions], [canon(t) for t in truths])


LENGTH_BINS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, None))


def exprate_by_length(predictions: Sequence[Tokens], truths: Sequence[Tokens],
                      bins: Sequence[tuple[int, int | None]] = LENGTH_BINS) -> dict[str, dict]:
    """ExpRate of the formulas whose truth has a length (tokens) in each bin, ``{"1-5": {"n": ..,
    "exprate": ..}, .., "41+": ..}``: where a model fails, since one wrong token in 30 is enough to
    miss the exact match. Empty bins are left out."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} truths")
    out = {}
    for low, high in bins:
        pairs = [(p, t) for p, t in zip(predictions, truths) if low <= len(t) and (high is None or len(t) <= high)]
        if pairs:
            name = f"{low}-{high}" if high is not None else f"{low}+"
            out[name] = {"n": len(pairs), "exprate": round(sum(list(p) == list(t) for p, t in pairs) / len(pairs), 4)}
    return out


def exprate_by_novelty(predictions: Sequence[Tokens], truths: Sequence[Tokens],
                       known: Iterable[Tokens]) -> dict[str, dict]:
    """ExpRate of the formulas whose truth is one of ``known`` (e.g. the training split's truths:
    formulas the model was trained on, here in other hands) and of those whose truth is new,
    ``{"seen": {"n": .., "exprate": ..}, "new": ..}``: how much of a score comes from formulas
    met in training. Empty groups are left out."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} truths")
    seen = {tuple(t) for t in known}
    out = {}
    for name, member in (("seen", True), ("new", False)):
        pairs = [(p, t) for p, t in zip(predictions, truths) if (tuple(t) in seen) == member]
        if pairs:
            out[name] = {"n": len(pairs), "exprate": round(sum(list(p) == list(t) for p, t in pairs) / len(pairs), 4)}
    return out


def repetition_loop(tokens: Tokens, min_repeats: int = 3, max_period: int = 6) -> bool:
    """Whether a sequence ends in a loop: its last ``period`` tokens repeated at least
    ``min_repeats`` times in a row (``x + x + x + x +``, ``) ) ) )``), for some period up to
    ``max_period``. The failure a decoder without coverage falls into on long formulas."""
    tokens = list(tokens)
    for period in range(1, max_period + 1):
        need = period * min_repeats
        if len(tokens) < need:
            break
        tail = tokens[-period:]
        if all(tokens[-(k + 1) * period: len(tokens) - k * period] == tail for k in range(min_repeats)):
            return True
    return False


def paired_comparison(a_right: Sequence[bool], b_right: Sequence[bool], resamples: int = 10000,
                      seed: int = 0) -> dict:
    """Whether recognizer B is right on more of the same formulas than A, beyond chance.

    ``a_right``, ``b_right``: for each formula, whether each got it exactly. Returns both ExpRates,
    their ``difference`` (B - A), ``gained`` (B right where A is wrong) and ``lost`` (the reverse),
    the two-sided exact McNemar ``p_value`` (a binomial test of the gained against the lost: only
    the formulas on which they disagree say anything) and ``interval95``, the 2.5 and 97.5
    percentiles of the difference over ``resamples`` bootstrap resamples of the formulas. On 671
    formulas one formula is 0.15 points; two models a point apart often differ by chance."""
    import numpy as np

    a = np.asarray(a_right, dtype=bool)
    b = np.asarray(b_right, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"{a.size} results against {b.size}: compare the same formulas")
    n = int(a.size)
    if n == 0:
        raise ValueError("no formulas to compare")
    gained, lost = int(np.sum(b & ~a)), int(np.sum(a & ~b))
    discordant = gained + lost
    # exact two-sided binomial test of min(gained, lost) among the discordant pairs, p = 1/2
    tail = sum(math.comb(discordant, k) for k in range(min(gained, lost) + 1)) / 2 ** discordant if discordant else 1.0
    p_value = min(1.0, 2 * tail)
    rng = np.random.default_rng(seed)
    diff = b.astype(np.float64) - a.astype(np.float64)
    samples = diff[rng.integers(0, n, size=(resamples, n))].mean(axis=1) if resamples else np.array([diff.mean()])
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"n": n, "exprate_a": round(float(a.mean()), 4), "exprate_b": round(float(b.mean()), 4),
            "difference": round(float(diff.mean()), 4), "gained": gained, "lost": lost,
            "p_value": float(f"{p_value:.3g}"), "interval95": [round(float(low), 4), round(float(high), 4)]}
