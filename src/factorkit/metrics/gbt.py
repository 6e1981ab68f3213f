"""Gradient-boosted trees for DCI, vectorised over the trees of a boosting stage and over features.

DCI (Eastwood & Williams 2018, as computed in disentanglement_lib) fits scikit-learn's
``GradientBoostingClassifier()`` with its defaults to predict each factor from the codes and
reads the impurity-based ``feature_importances_``. That classifier builds one depth-3
regression tree per class per stage, one after another: for a 40-valued factor, 4,000 trees in
a Python loop — where the reference implementation spends its time.

:class:`GradientBoosting` fits the *same* model:

* log-loss (binomial for two classes, multinomial otherwise), raw scores initialised from the
  class prior;
* per stage, one regression tree per class on the negative gradient ``y − p``, squared-error
  criterion: the best split maximises ``S_L²/n_L + S_R²/n_R``, thresholds lie halfway between
  consecutive distinct float32 values (values closer than 1e-7 are one value), at least one
  sample per leaf, nodes with impurity ≤ ε are not split, depth 3;
* one Newton step per leaf, ``Σ(y−p)/Σp(1−p)``, × (K−1)/K in the multinomial case; shrinkage 0.1;
* importances: per tree, the impurity decrease of each split ÷ n, averaged over trees that
  split at all, normalised to sum to one.

All trees of a stage and all features are grown together: at each depth every feature's samples
are kept grouped by node and sorted by value inside each node, so one cumulative sum scores
every candidate split of every node of every tree; children are formed by a stable linear
partition, never a sort.

Ties: when several features give exactly the same best proxy (common late in boosting, where a
split isolates one extreme sample that is extreme on several codes), scikit-learn keeps the
first of them in a random feature order, i.e. a uniformly random one — unseeded in
disentanglement_lib, which is why its DCI is not reproducible. ``ties="random"`` (default)
does the same with a seeded random priority per (feature, tree, node); ``ties="first"`` takes
the lowest feature index, which concentrates the importance of tied features on one of them
and raised DCI completeness above every scikit-learn seed in our check (docs/results.md §9).
``bins=B`` (the fast mode) first maps each feature to ≤ B quantile bins, as histogram GBMs do.
Sums are float64; the fitted model equals scikit-learn's to round-off until two candidate splits
tie, and its DCI lies within scikit-learn's seed-to-seed spread (tested).
"""

from __future__ import annotations

import numpy as np
import torch

EPSILON = float(np.finfo(np.float64).eps)
FEATURE_THRESHOLD = 1e-7  # scikit-learn: values closer than this are one value
CHUNK_ELEMENTS = 1 << 20

Tensor = torch.Tensor


class GradientBoosting:
    """Multi-class gradient boosting with scikit-learn's ``GradientBoostingClassifier``
    defaults (``n_estimators=100, learning_rate=0.1, max_depth=3``)."""

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.1, max_depth: int = 3,
                 bins: int | None = None, ties: str = "random", random_state: int = 0) -> None:
        if ties not in ("random", "first"):
            raise ValueError(f"ties={ties!r}: 'random' or 'first'")
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.bins = bins
        self.ties = ties
        self.random_state = random_state

    # --- input encoding ------------------------------------------------------------------------
    def _fit_bins(self, x: np.ndarray) -> None:
        self._edges = []
        for f in range(x.shape[1]):
            uniq = np.unique(x[:, f])
            if len(uniq) <= self.bins:  # few values: one bin per value, exact
                self._edges.append((uniq[1:] + uniq[:-1]) / 2)
            else:
                self._edges.append(np.unique(np.quantile(x[:, f], np.linspace(0, 1, self.bins + 1)[1:-1])))

    @property
    def _n_bins(self) -> int:
        return max(len(e) for e in self._edges) + 1

    def _transform(self, x: np.ndarray) -> Tensor:
        x = np.asarray(x, dtype=np.float32)  # scikit-learn's trees compare float32 values
        if self.bins is not None:
            x = np.stack([np.searchsorted(e, x[:, f], side="right") for f, e in enumerate(self._edges)], 1)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))

    # --- fitting ---------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray) -> "GradientBoosting":
        x = np.asarray(x, dtype=np.float32)
        if self.bins is not None:
            self._fit_bins(x)
        X = self._transform(x)  # (n, F)
        n, nf = X.shape
        self.n_features_in_ = nf
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError("gradient boosting needs at least two classes")
        binary = k == 2
        T = 1 if binary else k
        yi_t = torch.from_numpy(yi.astype(np.int64))
        target = yi_t[None].double() if binary else torch.nn.functional.one_hot(yi_t, k).T.double()  # (T, n)
        prior = np.clip(np.bincount(yi, minlength=k) / n, EPSILON, 1 - EPSILON)
        if binary:
            init = np.array([np.log(prior[1] / (1 - prior[1]))])
        else:
            init = np.log(prior) - np.log(prior).mean()
        self._init = torch.from_numpy(init)
        raw = self._init[:, None].expand(T, n).clone()

        depth = self.max_depth
        n_leaves = 2**depth
        order0 = torch.argsort(X, dim=0, stable=True).T.contiguous()  # (F, n)
        xs0 = torch.gather(X.T, 1, order0)  # (F, n) sorted values
        # dense rank of each sample's value; consecutive values within 1e-7 share a rank
        step = torch.zeros_like(order0)
        step[:, 1:] = (xs0[:, 1:] > xs0[:, :-1] + FEATURE_THRESHOLD).long()
        ranks = torch.empty_like(order0).scatter_(1, order0, torch.cumsum(step, 1))  # (F, n)
        XT = X.T.contiguous()
        feats = torch.zeros(self.n_estimators, T, n_leaves - 1, dtype=torch.long)
        thrs = torch.full((self.n_estimators, T, n_leaves - 1), float("inf"), dtype=torch.float64)
        leaves = torch.zeros(self.n_estimators, T, n_leaves, dtype=torch.float64)
        importance_sum = torch.zeros(nf, dtype=torch.float64)
        relevant = 0
        pos = torch.arange(n)
        per_chunk = max(1, CHUNK_ELEMENTS // (T * n))
        chunks = [(a, min(a + per_chunk, nf)) for a in range(0, nf, per_chunk)]
        gen = torch.Generator().manual_seed(int(self.random_state))

        for stage in range(self.n_estimators):
            prob = torch.sigmoid(raw) if binary else torch.softmax(raw, dim=0)
            grad = target - prob  # (T, n) negative gradient, one row per tree
            node = torch.zeros(T, n, dtype=torch.long)  # node of each sample (sample order)
            # per feature chunk: (f, T, n) the sample at each position
            perms = [order0[lo_f:hi_f, None, :].expand(hi_f - lo_f, T, n) for lo_f, hi_f in chunks]
            alive = torch.ones(T, 1, dtype=torch.bool)
            tree_imp = torch.zeros(T, nf, dtype=torch.float64)
            hists = None
            for d in range(depth):
                nn_ = 2**d
                if self.bins is not None:  # fast mode: split search on per-bin sums
                    split, best, best_f, thr, tot, safe, node, alive, hists = _binned_level(
                        X, grad, node, alive, nn_, self._n_bins, hists if d else None)
                    gain = torch.where(split, best - tot**2 / safe, 0.0) / n
                    tree_imp.scatter_add_(1, torch.where(split, best_f, 0), gain)
                    lvl = slice(nn_ - 1, 2 * nn_ - 1)
                    feats[stage, :, lvl] = torch.where(split, best_f, 0)
                    thrs[stage, :, lvl] = torch.where(split, thr, float("inf"))
                    continue
                cnt = torch.zeros(T, nn_, dtype=torch.long).scatter_add_(1, node, torch.ones_like(node))
                tot = torch.zeros(T, nn_, dtype=torch.float64).scatter_add_(1, node, grad)
                sq = torch.zeros(T, nn_, dtype=torch.float64).scatter_add_(1, node, grad * grad)
                safe = cnt.clamp(min=1).double()
                impurity = sq / safe - (tot / safe) ** 2
                splittable = alive & (cnt >= 2) & (impurity > EPSILON)
                start = torch.cumsum(cnt, 1) - cnt  # first position of each node segment
                # node of each position: segments are laid out in node order, the same for every feature
                nd = torch.repeat_interleave(torch.arange(nn_).repeat(T), cnt.reshape(-1)).view(T, n)
                seg_start = torch.gather(start, 1, nd)
                nl = (pos[None] - seg_start + 1).double()
                n_node = torch.gather(cnt, 1, nd).double()
                nr = n_node - nl
                same_next = torch.zeros(T, n, dtype=torch.bool)
                same_next[:, :-1] = nd[:, 1:] == nd[:, :-1]
                ok = same_next & torch.gather(splittable, 1, nd)

                inv_nl, inv_nr = 1.0 / nl, 1.0 / nr.clamp(min=1)
                best = torch.full((T, nn_), float("-inf"), dtype=torch.float64)
                best_f = torch.zeros(T, nn_, dtype=torch.long)
                thr = torch.full((T, nn_), float("inf"), dtype=torch.float64)
                # ties between features: scikit-learn visits a node's features in a random order and
                # keeps the first best, i.e. a uniformly random one of the tied features; a random
                # priority per (feature, tree, node) does the same ("first": the lowest index)
                priority = torch.rand(nf, T, nn_, generator=gen, dtype=torch.float64) if self.ties == "random" \
                    else -torch.arange(nf, dtype=torch.float64)[:, None, None].expand(nf, T, nn_)
                best_p = torch.full((T, nn_), float("-inf"), dtype=torch.float64)
                # features in chunks of ~1M elements: large fresh tensors cost more in page faults
                for c, (lo_f, hi_f) in enumerate(chunks):
                    c_best, c_f, c_thr, c_p = _best_splits(grad, perms[c], ranks[lo_f:hi_f], XT[lo_f:hi_f],
                                                           start, nd, tot, ok, inv_nl, inv_nr, nn_, priority[lo_f:hi_f])
                    better = (c_best > best) | ((c_best == best) & (c_p > best_p))
                    best = torch.where(better, c_best, best)
                    best_p = torch.where(better, c_p, best_p)
                    best_f = torch.where(better, c_f + lo_f, best_f)
                    thr = torch.where(better, c_thr, thr)
                split = splittable & torch.isfinite(best)
                # importance: w·imp − w_L·imp_L − w_R·imp_R = S_L²/n_L + S_R²/n_R − S²/n, per n
                gain = torch.where(split, best - tot**2 / safe, 0.0) / n
                tree_imp.scatter_add_(1, torch.where(split, best_f, 0), gain)
                lvl = slice(nn_ - 1, 2 * nn_ - 1)
                feats[stage, :, lvl] = torch.where(split, best_f, 0)
                thrs[stage, :, lvl] = torch.where(split, thr, float("inf"))
                alive = split.repeat_interleave(2, dim=1)
                # children (right when x > threshold; unsplit nodes send everyone left)
                f_s = torch.gather(feats[stage, :, lvl], 1, node)
                t_s = torch.gather(thrs[stage, :, lvl], 1, node)
                right = X[pos[None], f_s] > t_s  # (T, n) in sample order
                node = 2 * node + right
                if d + 1 < depth:
                    for c in range(len(chunks)):
                        perms[c] = _partition(perms[c], right, nd, seg_start, cnt, start)
            # Newton step per leaf (scikit-learn _update_terminal_regions)
            cnt = torch.zeros(T, n_leaves, dtype=torch.long).scatter_add_(1, node, torch.ones_like(node))
            num = torch.zeros(T, n_leaves, dtype=torch.float64).scatter_add_(1, node, grad)
            hess = torch.zeros(T, n_leaves, dtype=torch.float64).scatter_add_(1, node, prob * (1 - prob))
            if not binary:
                num = num * (k - 1) / k
            mean_h = hess / cnt.clamp(min=1)
            value = torch.where((cnt > 0) & (mean_h.abs() >= 1e-150), num / torch.where(hess == 0, 1.0, hess), 0.0)
            leaves[stage] = self.learning_rate * value
            raw += torch.gather(leaves[stage], 1, node)
            splitted = torch.isfinite(thrs[stage, :, 0])
            relevant += int(splitted.sum())
            importance_sum += tree_imp[splitted].sum(0)
        self._feats, self._thrs, self._leaves = feats, thrs, leaves
        self._binary = binary
        avg = (importance_sum / max(relevant, 1)).numpy()
        total = avg.sum()
        self.feature_importances_ = avg / total if total > 0 else np.zeros(nf)
        return self

    # --- prediction ------------------------------------------------------------------------------
    def decision_function(self, x: np.ndarray) -> np.ndarray:
        X = self._transform(x)
        n = len(X)
        T = self._feats.shape[1]
        raw = self._init[:, None].expand(T, n).clone()
        cols = torch.arange(n)[None]
        for stage in range(self._feats.shape[0]):
            node = torch.zeros(T, n, dtype=torch.long)
            for d in range(self.max_depth):
                lvl = slice(2**d - 1, 2 ** (d + 1) - 1)
                f = torch.gather(self._feats[stage, :, lvl], 1, node)
                t = torch.gather(self._thrs[stage, :, lvl], 1, node)
                node = 2 * node + (X[cols, f] > t)
            raw += torch.gather(self._leaves[stage], 1, node)
        return raw.T.numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        raw = self.decision_function(x)
        # scikit-learn: a binary raw score of exactly 0 (p = 0.5) is the second class
        idx = (raw[:, 0] >= 0).astype(np.int64) if self._binary else raw.argmax(1)
        return self.classes_[idx]

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y)))


def _binned_level(X: Tensor, grad: Tensor, node: Tensor, alive: Tensor, nn_: int, n_bins: int,
                  parent: tuple[Tensor, Tensor] | None):
    """One depth of all trees on binned features (values 0..n_bins−1): per (tree, node, feature,
    bin) sums of the gradient and counts, cumulated over bins, give every candidate split.

    Below the root only left children are accumulated; a right child's histogram is its
    parent's minus its sibling's (the usual histogram-subtraction trick)."""
    T, n = grad.shape
    nf = X.shape[1]
    xb = X.long().T  # (F, n)
    cnt = torch.zeros(T, nn_, dtype=torch.long).scatter_add_(1, node, torch.ones_like(node))
    tot = torch.zeros(T, nn_, dtype=torch.float64).scatter_add_(1, node, grad)
    sq = torch.zeros(T, nn_, dtype=torch.float64).scatter_add_(1, node, grad * grad)
    safe = cnt.clamp(min=1).double()
    impurity = sq / safe - (tot / safe) ** 2
    splittable = alive & (cnt >= 2) & (impurity > EPSILON)
    # histogram index of (tree, node, feature, bin), one feature at a time (small tensors)
    size = T * nn_ * nf * n_bins
    base = (torch.arange(T)[:, None] * nn_ + node) * (nf * n_bins)  # (T, n)
    hist_g = torch.zeros(size, dtype=torch.float64)
    hist_n = torch.zeros(size, dtype=torch.float64)
    if parent is None:  # root: every sample of every tree
        g_flat = grad.reshape(-1)
        ones = torch.ones(T * n, dtype=torch.float64)
        for f in range(nf):
            key = (base + (f * n_bins + xb[f])[None]).reshape(-1)
            hist_g.scatter_add_(0, key, g_flat)
            hist_n.scatter_add_(0, key, ones)
    else:  # only samples in left children
        sel = (node % 2 == 0).reshape(-1).nonzero().squeeze(1)
        sample = sel % n
        g_flat = grad.reshape(-1)[sel]
        base_sel = base.reshape(-1)[sel]
        ones = torch.ones(len(sel), dtype=torch.float64)
        for f in range(nf):
            key = base_sel + (f * n_bins + xb[f])[sample]
            hist_g.scatter_add_(0, key, g_flat)
            hist_n.scatter_add_(0, key, ones)
    hist_g = hist_g.view(T, nn_, nf, n_bins)
    hist_n = hist_n.view(T, nn_, nf, n_bins)
    if parent is not None:  # right child = parent − left child
        pg, pn = parent
        hist_g[:, 1::2] = pg - hist_g[:, 0::2]
        hist_n[:, 1::2] = pn - hist_n[:, 0::2]
    raw_hists = (hist_g, hist_n)
    hist_g = hist_g.cumsum(3)
    hist_n = hist_n.cumsum(3)
    n_node, s_node = cnt[..., None, None].double(), tot[..., None, None]
    nl, nr = hist_n, n_node - hist_n
    # a split after bin b is a new partition only if bin b itself holds samples of the node
    nonempty = torch.ones_like(hist_n, dtype=torch.bool)
    nonempty[..., 1:] = hist_n[..., 1:] > hist_n[..., :-1]
    nonempty[..., 0] = hist_n[..., 0] > 0
    valid = (nl > 0) & (nr > 0) & nonempty & splittable[..., None, None]
    proxy = torch.where(valid, hist_g**2 / nl.clamp(min=1) + (s_node - hist_g) ** 2 / nr.clamp(min=1), float("-inf"))
    flat = proxy.reshape(T, nn_, nf * n_bins)
    best, arg = flat.max(dim=2)  # first (lowest feature, then lowest bin) wins ties
    best_f, best_b = arg // n_bins, arg % n_bins
    split = splittable & torch.isfinite(best)
    thr = best_b.double() + 0.5
    f_s = torch.gather(torch.where(split, best_f, 0), 1, node)
    t_s = torch.gather(torch.where(split, thr, float("inf")), 1, node)
    right = X[torch.arange(n)[None], f_s] > t_s
    return split, best, best_f, thr, tot, safe, 2 * node + right, split.repeat_interleave(2, dim=1), raw_hists


def _best_splits(grad, perm, ranks, values, start, nd, tot, ok, inv_nl, inv_nr, nn_, priority):
    """Best split of every node of every tree over one chunk of features.

    ``perm``: (f, T, n) samples grouped by node and sorted by value inside each node;
    ``ranks``/``values``: (f, n) dense value rank and value of each sample.
    ``priority``: (f, T, nn) which of several features with exactly the same best proxy wins.
    Returns the best proxy ``S_L²/n_L + S_R²/n_R`` per (T, node), the chunk-local feature, the
    threshold and the winner's priority.
    """
    nf, T, n = perm.shape
    g = torch.gather(grad[None].expand(nf, T, n), 2, perm)
    cs = torch.cumsum(g, 2)
    before = torch.where(start > 0, torch.gather(cs, 2, (start - 1).clamp(min=0)[None].expand(nf, T, nn_)), 0.0)
    key = nd[None].expand(nf, T, n)
    sl = cs.sub_(torch.gather(before, 2, key))
    sr = torch.gather(tot, 1, nd)[None] - sl
    rv = torch.gather(ranks[:, None, :].expand(nf, T, n), 2, perm)
    valid = ok[None].expand(nf, T, n).clone()
    valid[..., :-1] &= rv[..., 1:] > rv[..., :-1]
    proxy = sl.mul_(sl).mul_(inv_nl).add_(sr.mul_(sr).mul_(inv_nr))
    proxy.masked_fill_(~valid, float("-inf"))
    seg_max = torch.full((nf, T, nn_), float("-inf"), dtype=torch.float64).scatter_reduce_(
        2, key, proxy, "amax", include_self=True)
    hit = (proxy == torch.gather(seg_max, 2, key)) & valid
    first = torch.full((nf, T, nn_), n, dtype=torch.long).scatter_reduce_(
        2, key, torch.where(hit, torch.arange(n).expand(nf, T, n), n), "amin", include_self=True)
    best = seg_max.max(dim=0).values
    tied = seg_max == best[None]
    best_f = torch.where(tied, priority, float("-inf")).argmax(dim=0)  # among exact ties, the top priority
    j = torch.gather(first, 0, best_f[None])[0].clamp(max=n - 2)  # last position going left
    t_idx = torch.arange(T)[:, None].expand_as(j)
    lo = values[best_f, perm[best_f, t_idx, j]]
    hi = values[best_f, perm[best_f, t_idx, j + 1]]
    thr = lo / 2 + hi / 2  # scikit-learn: midpoint, or the lower value if rounding reaches the upper
    thr = torch.where((thr == hi) | ~torch.isfinite(thr), lo, thr)
    return best, best_f, thr, torch.gather(priority, 0, best_f[None])[0]


def _partition(perm: Tensor, right: Tensor, nd: Tensor, seg_start: Tensor, cnt: Tensor, start: Tensor) -> Tensor:
    """Stable split of every node segment into its left then right child, for all features.

    Position p of node v goes to ``start_left(v) + #lefts before p in v`` or
    ``start_right(v) + #rights before p in v``; children keep the value order.
    """
    nf, T, n = perm.shape
    bit = torch.gather(right[None].expand(nf, T, n), 2, perm).long()  # child side per position
    csum = torch.cumsum(bit, 2)
    rights_before_seg = torch.where(
        start > 0, torch.gather(csum, 2, (start - 1).clamp(min=0)[None].expand(nf, T, start.shape[1])), 0)
    n_right = torch.gather(csum, 2, (start + cnt - 1).clamp(min=0)[None].expand(nf, T, start.shape[1])) - rights_before_seg
    n_right = torch.where(cnt[None] > 0, n_right, 0)
    rb = torch.gather(rights_before_seg, 2, nd[None].expand(nf, T, n))
    rights_before = csum - bit - rb  # rights before p inside its segment
    pos_in_seg = torch.arange(n)[None, None] - seg_start[None]
    lefts_before = pos_in_seg - rights_before
    left_size = cnt[None] - n_right  # (F, T, nn)
    left_size_p = torch.gather(left_size, 2, nd[None].expand(nf, T, n))
    dest = seg_start[None] + torch.where(bit.bool(), left_size_p + rights_before, lefts_before)
    return torch.empty_like(perm).scatter_(2, dest, perm)
