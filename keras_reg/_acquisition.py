"""What Bayesian deep learning computes from Monte Carlo dropout samples.

`uncertainty` splits the predictive entropy of a stack of class
probabilities into its aleatoric part (the expected entropy) and its
epistemic part (the mutual information between the label and the weights,
BALD's score). `acquire` scores a pool of unlabelled inputs with those
quantities (or BatchBALD's joint score) and returns the points to label
next, streaming over the pool so that memory does not grow with it.

Re-exported by `keras_reg.inference`.
"""

import inspect
import numbers

import keras
import numpy as np

from keras_reg._checks import check_choice, check_positive_int, check_seed

__all__ = ["acquire", "uncertainty"]

METHODS = ("bald", "entropy", "variation_ratio", "batchbald", "random")

# The rows of one pool chunk: as many as keep its `(samples, rows, classes)`
# probabilities within this many numbers (16 MiB in float32).
_CHUNK_ELEMENTS = 2**22

# BatchBALD keeps the probabilities of at most this many candidates (the
# pool's highest BALD scores), and scores them against at most this many
# configurations of the labels of the points already chosen.
_BATCHBALD_CANDIDATES = 2048
_BATCHBALD_CONFIGURATIONS = 1024


def _tolerance(dtype):
    """How far a row's sum may stray from 1: the square root of the dtype's
    machine epsilon (float16 3.1e-2, float32 3.5e-4, float64 1.5e-8)."""
    return float(np.sqrt(np.finfo(dtype).eps))


def _entropy(p, axis=-1):
    """Natural-log entropy in float64, `0 log 0 = 0`."""
    logs = np.log(p, out=np.zeros(np.shape(p)), where=p > 0)
    return -np.sum(p * logs, axis=axis)


def uncertainty(samples):
    """The split of predictive uncertainty, per row, from Monte Carlo samples.

    From a `(samples, batch, classes)` stack of class probabilities, such as
    `mc_predict(model, x, return_samples=True)[2]`, with `p_t` the
    probabilities of sample `t` and `p` their mean:

    - `"predictive_entropy"`: `H[p]`, the total uncertainty;
    - `"expected_entropy"`: `E_t H[p_t]`, the aleatoric part (the noise the
      model expects in the label whatever its weights);
    - `"mutual_information"`: their difference, the epistemic part (what the
      label would tell about the weights; BALD's acquisition score,
      Houlsby et al. 2011, Gal et al. 2017);
    - `"variation_ratio"`: `1 - (share of samples whose most probable
      class is the modal class)` (ties go to the lower class index);
    - `"mean"`: `p`, shaped `(batch, classes)`.

    Natural logarithms, with `0 log 0 = 0`, so probabilities of exactly 0
    and 1 are safe. Everything is computed in float64 and returned in the
    input's floating dtype (float64 for integer input). The mutual
    information is non-negative (Jensen's inequality); what rounding leaves
    below 0 is clipped to 0, so it is never negative, in any dtype.

    Args:
        samples: array-like of shape `(samples, batch, classes)`: class
            probabilities, each row summing to 1 within the square root of
            the dtype's machine epsilon (3.5e-4 in float32).

    Returns:
        A dict of NumPy arrays: the four scores shaped `(batch,)`, and
        `"mean"` shaped `(batch, classes)`.

    Raises:
        ValueError: a stack that is not of rank 3, empty, not finite, with
            negative entries or rows not summing to 1.

    Example:

    >>> _, _, stack = keras_reg.inference.mc_predict(
    ...     model, x, samples=30, seed=0, return_samples=True
    ... )
    >>> scores = keras_reg.inference.uncertainty(stack)
    >>> epistemic = scores["mutual_information"]
    """
    p, dtype = _probabilities(samples)
    p = p.astype("float64")
    mean = p.mean(0)
    predictive = _entropy(mean)
    expected = _entropy(p).mean(0)
    mutual = np.maximum(predictive - expected, 0.0)
    return {
        "predictive_entropy": predictive.astype(dtype),
        "expected_entropy": expected.astype(dtype),
        "mutual_information": mutual.astype(dtype),
        "variation_ratio": _variation_ratio(p).astype(dtype),
        "mean": mean.astype(dtype),
    }


def _probabilities(samples):
    """The stack as an array of probabilities in [0, 1] (its own dtype, or
    float64 where it had to be clipped), and the dtype to return scores
    in; `ValueError` for anything else (see `uncertainty`)."""
    array = np.asarray(samples)
    if array.ndim != 3:
        raise ValueError(
            "Invalid value received for argument `samples`. Expected a stack "
            "of class probabilities of shape (samples, batch, classes). "
            f"Received: samples with shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(
            "Invalid value received for argument `samples`. Expected a "
            f"non-empty stack. Received: samples with shape {array.shape}"
        )
    if np.issubdtype(array.dtype, np.floating):
        dtype = array.dtype
    elif np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        dtype = np.dtype("float64")
    else:
        raise ValueError(
            "Invalid value received for argument `samples`. Expected class "
            f"probabilities (a float array). Received: dtype {array.dtype}"
        )
    tol = _tolerance(dtype)
    # In the stack's own dtype (no float64 copy): the sums accumulate in
    # float64, and the row sums see every entry (NaN or an infinity makes
    # one non-finite).
    sums = array.sum(-1, dtype="float64")
    if not np.all(np.isfinite(sums)):
        raise ValueError(
            "Invalid value received for argument `samples`. Expected finite "
            "class probabilities. Received: NaN or infinite entries"
        )
    low = float(array.min())
    if low < -tol:
        raise ValueError(
            "Invalid value received for argument `samples`. Expected class "
            f"probabilities (>= 0). Received: a smallest entry of {low!r}"
        )
    deviation = sums - 1.0
    worst = float(deviation.flat[np.argmax(np.abs(deviation))])
    if abs(worst) > tol:
        raise ValueError(
            "Invalid value received for argument `samples`. Expected class "
            "probabilities summing to 1 along the last axis (within "
            f"{tol:.1e} in {dtype}): the model's softmax output, not logits. "
            f"Received: a row summing to {1.0 + worst!r}"
        )
    if low < 0.0 or float(array.max()) > 1.0:
        array = np.clip(array.astype("float64"), 0.0, 1.0)
    return array, dtype


def _expected_entropy(p):
    """`E_t H[p_t]` per row, summed in float64. A float16 or float32 stack
    takes its logarithms in float32 (a quarter of the time of float64 on
    the CPU; 3e-8 from the float64 figure on 10 classes), anything else in
    float64 as `uncertainty` does."""
    if p.dtype in (np.float16, np.float32):
        p = p.astype("float32", copy=False)
        logs = np.log(p, out=np.zeros(p.shape, "float32"), where=p > 0)
        terms = np.einsum("tbc,tbc->b", p, logs, dtype="float64")
        return -terms / p.shape[0]
    return _entropy(p.astype("float64", copy=False)).mean(0)


def _mutual_information(p, predictive):
    """`H[mean] - E_t H[p_t]` per row, never below 0."""
    return np.maximum(predictive - _expected_entropy(p), 0.0)


def _variation_ratio(p):
    """1 - the share of samples voting for the modal class, per row."""
    samples, batch, classes = p.shape
    votes = np.argmax(p, axis=-1)  # (samples, batch)
    cells = (np.arange(batch) * classes + votes).ravel()
    counts = np.bincount(cells, minlength=batch * classes).reshape(batch, classes)
    return 1.0 - counts.max(-1) / samples


def _score(stack, key):
    """`uncertainty(stack)[key].astype("float64")` for one of its scores,
    computing only that score: the same figure, except that a float16 or
    float32 stack's mutual information takes its logarithms in float32
    (`_expected_entropy`: within 3e-8 before the cast to the stack's
    dtype)."""
    p, dtype = _probabilities(stack)
    if key == "variation_ratio":
        # The votes of the stack's own dtype: float64 would order alike.
        score = _variation_ratio(p)
    else:
        score = _entropy(p.mean(0, dtype="float64"))
        if key == "mutual_information":
            score = _mutual_information(p, score)
    return score.astype(dtype).astype("float64")


def _rows(pool):
    leaves = keras.tree.flatten(pool)
    if not leaves or not all(hasattr(leaf, "shape") for leaf in leaves):
        raise ValueError(
            "Invalid value received for argument `pool`. Expected an array "
            "(or a list/dict of arrays) of inputs, indexable by row. "
            f"Received: pool of type {type(pool).__name__}"
        )
    rows = {int(np.shape(leaf)[0]) if np.ndim(leaf) else 0 for leaf in leaves}
    if len(rows) != 1:
        raise ValueError(
            "Invalid value received for argument `pool`. Expected inputs "
            f"with the same number of rows. Received: rows {sorted(rows)}"
        )
    return rows.pop()


def _take(pool, start, stop):
    return keras.tree.map_structure(lambda a: a[start:stop], pool)


def _classes(model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
        return shape[-1]
    return None


def _chunk_rows(samples, classes, batch_size):
    rows = max(1, _CHUNK_ELEMENTS // (samples * max(classes or 1024, 1)))
    batch = batch_size or 32
    return max(batch, rows // batch * batch)


def _supports_consistent():
    from keras_reg import inference

    return "consistent" in inspect.signature(inference.mc_predict).parameters


def _chunk_seed(seed, index):
    """A seed per pool chunk, so that the chunks' masks are independent."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] >> 1)


def _stream(model, pool, rows, samples, seed, batch_size, consistent, keep):
    """Runs `mc_predict` chunk by chunk over `pool`; `keep(start, stack)`
    gets each chunk's `(samples, chunk, classes)` stack and keeps what it
    needs."""
    from keras_reg import inference

    chunk = _chunk_rows(samples, _classes(model), batch_size)
    start, index = 0, 0
    while start < rows:
        stop = min(rows, start + chunk)
        kwargs = {}
        if consistent:
            kwargs["consistent"] = True
            chunk_seed = seed
        else:
            chunk_seed = _chunk_seed(seed, index)
        # Padded to whole batches (repeating the last row): one shape for
        # every call, so compiled backends trace the predict step once.
        batch = batch_size or 32
        padded = -(-(stop - start) // batch) * batch
        inputs = _take(pool, start, stop)
        if padded > stop - start:
            inputs = keras.tree.map_structure(
                lambda a, padded=padded: np.concatenate(
                    [a, np.repeat(a[-1:], padded - len(a), axis=0)]
                ),
                inputs,
            )
        _, _, stack = inference.mc_predict(
            model,
            inputs,
            samples=samples,
            batch_size=batch_size,
            seed=chunk_seed,
            return_samples=True,
            **kwargs,
        )
        if isinstance(stack, (list, tuple, dict)):
            raise ValueError(
                "Invalid value received for argument `model`. Expected a "
                "model with one output of class probabilities. Received: a "
                "model with nested outputs"
            )
        stack = np.asarray(stack)[:, : stop - start]
        try:
            keep(start, stack)
        except ValueError as error:
            raise ValueError(
                "Invalid value received for argument `model`. Expected a "
                "model whose output is class probabilities (a softmax), "
                f"shaped (batch, classes). Its Monte Carlo samples gave: {error}"
            ) from error
        classes = stack.shape[-1]
        chunk = _chunk_rows(samples, classes, batch_size)
        start, index = stop, index + 1


_SCORE = {
    "bald": "mutual_information",
    "entropy": "predictive_entropy",
    "variation_ratio": "variation_ratio",
}


def acquire(model, pool, count, method="bald", samples=20, seed=None, batch_size=None):
    """The points of a pool to label next, most informative first.

    Scores every row of `pool` from `samples` Monte Carlo dropout passes of
    `model` (which must output class probabilities) and returns the indices
    of the `count` best. The pool is streamed in chunks (of about
    `2**22 / (samples * classes)` rows): each chunk's samples are reduced to
    one score per row and dropped, so memory does not grow with the pool,
    and the cost is about that of `mc_predict` over the pool (the Speed
    guide gives the ratio). The scores are those of `uncertainty`, except
    that the mutual information of float32 (or float16) probabilities
    takes its logarithms in float32, within 3e-8 of the float64 figure.

    Methods (Gal, Islam & Ghahramani 2017; Kirsch et al. 2019):

    - `"bald"`: the mutual information between label and weights (the
      epistemic uncertainty of `uncertainty`);
    - `"entropy"`: the predictive entropy (total uncertainty);
    - `"variation_ratio"`: the share of samples that disagree with the
      modal class;
    - `"batchbald"`: BatchBALD's greedy choice. Points are chosen one by one,
      each maximizing the joint mutual information of the batch so far,
      which does not pick the same information twice (near-duplicates of a
      chosen point score low). It needs the same dropout masks for every
      row in a sample, which `mc_predict(..., consistent=True)` draws.
      It keeps the probabilities of the `K = max(2048, 4 * count)` rows
      with the highest BALD scores (`samples * K * classes` numbers) and
      scores them against the label configurations `y_1..y_k` of the `k`
      points already chosen: exactly, all `classes**k` of them, while that
      is at most 1024; beyond, 1024 configurations drawn from their joint
      distribution (an unbiased estimate of the joint entropy; fixed by
      `seed`). Cost per acquired point: `samples * M * K * classes`
      multiply-adds, `M <= 1024` the configurations; memory
      `samples * (K + M) * classes` numbers besides the blocks of the
      product.
    - `"random"`: a uniform draw (with `seed`, the same every time); the
      model is not run.

    Ties keep the pool's order.

    Args:
        model: a built `keras.Model` with one output of class probabilities
            (a softmax), shaped `(batch, classes)`.
        pool: the unlabelled inputs: an array, or a list/dict of arrays,
            with their rows along the first axis.
        count: int in `[1, rows of pool]`, how many points to return.
        method: one of `"bald"`, `"entropy"`, `"variation_ratio"`,
            `"batchbald"`, `"random"`. Defaults to `"bald"`.
        samples: int >= 1, the Monte Carlo samples per point. Defaults to
            `20`.
        seed: optional int, fixing the dropout masks (and the random draw
            or the sampled configurations); each pool chunk draws from its
            own stream derived from it (BatchBALD: one stream for every
            chunk, consistent masks). Defaults to `None`: a seed drawn from
            NumPy's global generator (`keras.utils.set_random_seed` fixes
            it).
        batch_size: as for `mc_predict` (default 32).

    Returns:
        A NumPy int64 array of `count` distinct row indices into `pool`,
        the most informative first.

    Raises:
        ValueError: an unknown `method`, a `count` outside
            `[1, rows of pool]`, `samples` < 1, an empty pool, or outputs
            that are not class probabilities.

    Example:

    >>> picked = keras_reg.inference.acquire(
    ...     model, x_pool, count=10, method="bald", samples=20, seed=0
    ... )
    >>> x_train = np.concatenate([x_train, x_pool[picked]])
    """
    method = check_choice("method", method, METHODS)
    samples = check_positive_int("samples", samples)
    seed = check_seed(seed)
    rows = _rows(pool)
    if rows == 0:
        raise ValueError(
            "Invalid value received for argument `pool`. Expected at least "
            "one row. Received: an empty pool"
        )
    if (
        isinstance(count, bool)
        or not isinstance(count, numbers.Integral)
        or not 1 <= count <= rows
    ):
        raise ValueError(
            "Invalid value received for argument `count`. Expected an "
            f"integer in [1, {rows}] (the rows of `pool`). Received: "
            f"count={count!r}"
        )
    count = int(count)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    if method == "random":
        return np.random.default_rng(seed).permutation(rows)[:count].astype("int64")
    if method == "batchbald":
        return _acquire_batchbald(model, pool, rows, count, samples, seed, batch_size)
    scores = np.empty(rows, "float64")
    key = _SCORE[method]
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))

    def keep(start, stack):
        scores[start : start + stack.shape[1]] = _score(stack, key)

    _stream(model, pool, rows, samples, seed, batch_size, False, keep)
    return _top(scores, count)


def _top(scores, count):
    """The indices of the `count` highest scores, highest first, ties in
    index order."""
    order = np.argsort(-scores, kind="stable")
    return order[:count].astype("int64")


def _acquire_batchbald(model, pool, rows, count, samples, seed, batch_size):
    if not _supports_consistent():
        raise NotImplementedError(
            "method='batchbald' needs consistent Monte Carlo dropout "
            "(`keras_reg.inference.mc_predict(..., consistent=True)`), which "
            "this version of keras_reg does not have"
        )
    if seed is None:
        # One seed for every chunk: sample t has the same masks pool-wide.
        seed = int(np.random.randint(0, 2**31 - 1))
    limit = max(_BATCHBALD_CANDIDATES, 4 * count)
    kept = {"index": np.zeros(0, "int64"), "bald": np.zeros(0), "probs": None}

    def keep(start, stack):
        stack = np.asarray(stack)
        bald = uncertainty(stack)["mutual_information"].astype("float64")
        index = np.arange(start, start + stack.shape[1])
        if kept["probs"] is None:
            probs = stack
        else:
            probs = np.concatenate([kept["probs"], stack], axis=1)
            index = np.concatenate([kept["index"], index])
            bald = np.concatenate([kept["bald"], bald])
        if len(index) > limit:
            best = np.argsort(-bald, kind="stable")[:limit]
            best.sort()  # pool order, so that ties keep it
            index, bald, probs = index[best], bald[best], probs[:, best]
        kept.update(index=index, bald=bald, probs=probs)

    _stream(model, pool, rows, samples, seed, batch_size, True, keep)
    chosen = _batchbald_select(kept["probs"], count, seed=seed)
    return kept["index"][chosen]


def _batchbald_select(
    probs,
    count,
    configurations=_BATCHBALD_CONFIGURATIONS,
    seed=None,
    block=2**22,
    exact_limit=None,
    return_scores=False,
):
    """Greedy BatchBALD (Kirsch et al. 2019, Algorithm 1) over a consistent
    `(samples, n, classes)` stack: the `count` row indices, in the order
    chosen.

    Step `k` picks the row `n` maximizing
    `a(n) = H(y_1..y_k-1, y_n) - sum_i E_t H[p_t(y_i)]`. With the chosen
    points' configurations `m` of probability `q(m) = E_t p_t(m)`,
    `H(y_1..y_k-1, y_n) = H(y_1..y_k-1) + sum_m q(m) H[p(y_n | m)]`, where
    `p(y_n | m) = sum_t w_t(m) p_t(y_n)` and `w_t(m) = p_t(m) / sum_t p_t(m)`
    (the posterior weight of sample `t` given `m`). The first term is the
    same for every candidate, so the score kept is
    `sum_m q(m) H[p(y_n | m)] - E_t H[p_t(y_n)]`. The weights `w` are
    stored normalized per configuration, so nothing underflows however
    many points are chosen. While `M * classes <= configurations`, every
    configuration is kept, with its `q`; beyond, `configurations` of them
    are drawn from the joint distribution (ancestral sampling: a
    configuration, then the new point's label given it) and weighted
    equally. `exact_limit` (default: `configurations`) sets where exact
    enumeration stops; `return_scores=True` also returns each step's
    scores (`-inf` for the points already chosen).
    """
    if exact_limit is None:
        exact_limit = configurations
    p = np.asarray(probs, "float64")
    t_count, n, classes = p.shape
    rng = np.random.default_rng(seed)
    expected = _entropy(p).mean(0)  # (n,)
    weights = np.full((t_count, 1), 1.0 / t_count)  # w_t(m), columns sum to 1
    q = np.ones(1)  # configuration weights
    flat = p.reshape(t_count, n * classes)
    chosen, steps = [], []
    available = np.ones(n, bool)
    for _ in range(count):
        m = weights.shape[1]
        conditional = np.zeros(n)
        step = max(1, block // max(1, m * classes))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            # (m, rows, classes): p(y_n = c | configuration m)
            pred = (weights.T @ flat[:, lo * classes : hi * classes]).reshape(
                m, hi - lo, classes
            )
            conditional[lo:hi] = q @ _entropy(pred)
        score = conditional - expected
        score[~available] = -np.inf
        steps.append(score)
        best = int(np.argmax(score))  # the first of ties
        chosen.append(best)
        available[best] = False
        # p(y_best = c | m) for every configuration
        given = weights.T @ p[:, best, :]  # (m, classes)
        given = np.clip(given, 0.0, None)
        if m * classes <= exact_limit:
            # Exact: every (m, c), with q(m, c) = q(m) p(c | m).
            new_q = (q[:, None] * given).reshape(-1)
            joint = weights[:, :, None] * p[:, best, None, :]  # (t, m, c)
            denom = given.reshape(1, m, classes)
            safe = np.where(denom > 0, denom, 1.0)
            new_w = np.where(denom > 0, joint / safe, 1.0 / t_count)
            weights = new_w.reshape(t_count, m * classes)
            q = new_q
        else:
            # Sampled: configurations drawn from q, then a label given each.
            parents = rng.choice(m, size=configurations, p=q / q.sum())
            cond = given[parents]
            cond = cond / cond.sum(-1, keepdims=True)
            cumulative = np.cumsum(cond, -1)
            draws = rng.random(configurations)[:, None]
            labels = np.minimum((draws > cumulative).sum(-1), classes - 1)
            joint = weights[:, parents] * p[:, best, labels]  # (t, S)
            total = joint.sum(0, keepdims=True)
            weights = np.where(total > 0, joint / np.where(total > 0, total, 1), 1.0)
            weights = weights / weights.sum(0, keepdims=True)
            q = np.full(configurations, 1.0 / configurations)
    chosen = np.asarray(chosen, "int64")
    if return_scores:
        return chosen, steps
    return chosen
