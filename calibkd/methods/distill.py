"""Distillation targets and losses: KD, DKD, CUD's W-Clip, and the CUD-P projection.

Every function takes student logits, teacher logits or targets, and labels as
tensors, and returns a scalar loss or a (N, K) target; the same functions
serve training and evaluation.

Targets that get tempered live in **log space** end to end: a target is a
(N, K) tensor of log-probabilities, and "tempering" it at temperature T is
log_softmax(log q / T), the same softening KD applies to logits. So a target
built from logits z (log q = log_softmax(z)) and tempered at T equals
log_softmax(z / T) exactly, at any logit margin (``temper``). Going through
probabilities instead (clamping q before a log) breaks this once a
teacher's margin passes about 27.6: exp(-27.6) is the 1e-12 clamp.
``wclip_log`` and ``cudp_projection_log`` shape log targets; ``wclip`` and
``cudp_projection`` are the same maps on probability vectors (for reading
and teaching).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from calibkd.errors import ConfigError


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool) or not temperature > 0:
        raise ConfigError(f"temperature={temperature!r} must be > 0")


def _check_unit(name: str, value: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise ConfigError(f"{name}={value!r} must be in {'(0' if low_open else '[0'}, 1]")


def temper(log_target: torch.Tensor, temperature: float) -> torch.Tensor:
    """log_softmax(log q / T): soften (T > 1) or sharpen (T < 1) a target given
    as log-probabilities (or logits); returns log-probabilities."""
    _check_temperature(temperature)
    return torch.log_softmax(log_target / temperature, 1)


def kl_to_target(student_logits: torch.Tensor, log_target: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the batch of KL(q || softmax(student / T)), for a target q given
    as log-probabilities already at temperature T. Classes with q = 0
    (log q = -inf) contribute nothing, as in the definition."""
    log_student = F.log_softmax(student_logits / temperature, 1)
    target = log_target.exp()
    finite = torch.where(torch.isneginf(log_target), torch.zeros_like(log_target), log_target)
    return (target * (finite - log_student)).sum(1).mean()


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton, Vinyals & Dean (2015): (1 - a) CE(student, y) + a T^2 KL(p_T^teacher || p_T^student).

    The T^2 factor keeps the soft term's gradients on the scale of the hard term's.
    """
    _check_temperature(temperature)
    _check_unit("alpha", alpha)
    target = temper(teacher_logits, temperature)
    soft = kl_to_target(student_logits, target, temperature) * temperature ** 2
    return (1 - alpha) * F.cross_entropy(student_logits, labels) + alpha * soft


def target_kd_loss(student_logits: torch.Tensor, log_target: torch.Tensor, labels: torch.Tensor,
                   temperature: float = 4.0, alpha: float = 0.9, temper_target: bool = True) -> torch.Tensor:
    """KD towards a target given as log-probabilities (a calibrated or
    W-Clipped teacher): (1 - a) CE + a T^2 KL(tempered target || p_T^student).
    With ``temper_target`` False the target is used as it is (the ablation).
    A target of log_softmax(z) gives exactly ``kd_loss`` on logits z."""
    _check_temperature(temperature)
    _check_unit("alpha", alpha)
    target = temper(log_target, temperature) if temper_target else log_target
    soft = kl_to_target(student_logits, target, temperature) * temperature ** 2
    return (1 - alpha) * F.cross_entropy(student_logits, labels) + alpha * soft


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
             alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0) -> torch.Tensor:
    """Decoupled KD (Zhao et al. 2022): alpha * TCKD + beta * NCKD, both times T^2.

    TCKD is the KL between the binary (target, rest) distributions of teacher
    and student; NCKD the KL between their distributions over the non-target
    classes only. (The hard-label CE and the warm-up are added by the caller,
    as in the reference implementation.)
    """
    _check_temperature(temperature)
    if alpha < 0 or beta < 0:
        raise ConfigError(f"DKD weights alpha={alpha}, beta={beta} must be >= 0")
    t = temperature
    gt = F.one_hot(labels, student_logits.shape[1]).bool()
    p_s = torch.softmax(student_logits / t, 1)
    p_t = torch.softmax(teacher_logits / t, 1)
    # the label's probability by gather (a boolean mask would read its count back to the host)
    p_s_y, p_t_y = p_s.gather(1, labels[:, None]).squeeze(1), p_t.gather(1, labels[:, None]).squeeze(1)
    b_s = torch.stack([p_s_y, 1 - p_s_y], 1).clamp_min(1e-12)
    b_t = torch.stack([p_t_y, 1 - p_t_y], 1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1).mean() * t ** 2
    masked_s = F.log_softmax(student_logits / t - 1000.0 * gt, 1)
    masked_t = torch.softmax(teacher_logits / t - 1000.0 * gt, 1)
    nckd = (masked_t * (masked_t.clamp_min(1e-12).log() - masked_s)).sum(1).mean() * t ** 2
    return alpha * tckd + beta * nckd


def wclip(probs: torch.Tensor, labels: torch.Tensor, eta: float = 0.5, m: float = 0.7) -> torch.Tensor:
    """CUD stage 2, Wrong-mass Clipping (Kim et al. 2026): where the top class k*
    is not the label y, move delta = min(eta * p_k*, m * (p_k* - p_y)) from k*
    to y; every other class, and every correctly classified row, is unchanged."""
    _check_unit("eta", eta)
    _check_unit("m", m)
    top = probs.argmax(1)
    rows = torch.arange(probs.shape[0], device=probs.device)
    p_top, p_y = probs[rows, top], probs[rows, labels]
    delta = torch.minimum(eta * p_top, m * (p_top - p_y))
    delta = torch.where(top != labels, delta, torch.zeros_like(delta))
    out = probs.clone()
    out[rows, top] -= delta
    out[rows, labels] += delta
    return out


def cudp_projection(probs: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """CUD-P, the KL projection of brief section 3: q_y = c(x) and
    q_j = (1 - c) p_j / (1 - p_y) for j != y, with c raised where needed to
    c >= m' / (1 - p_y + m'), m' = max_{j != y} p_j, so that the label ranks
    first. Keeps the ratios among the non-target classes exactly.

    1 - p_y is computed as the sum of the non-target probabilities (equal for
    a normalised p, and exact in floating point, so rows sum to one even when
    p_y rounds to 1); a row with no non-target mass at all spreads 1 - c
    uniformly over the other classes.
    """
    if confidence.shape != labels.shape:
        raise ValueError(f"confidence must have one value per example, got {tuple(confidence.shape)}")
    if (confidence < 0).any() or (confidence > 1).any():
        raise ValueError("confidence values c(x) must be in [0, 1]")
    p = probs.double()
    rows = torch.arange(p.shape[0], device=p.device)
    rest = p.clone()
    rest[rows, labels] = 0.0
    rest_mass = rest.sum(1)
    empty = rest_mass <= 0
    if empty.any():
        uniform = torch.full_like(rest[empty], 1.0 / (p.shape[1] - 1))
        uniform[torch.arange(int(empty.sum()), device=p.device), labels[empty]] = 0.0
        rest[empty] = uniform
        rest_mass = rest.sum(1)
    runner_up = rest.max(1).values
    bound = runner_up / (rest_mass + runner_up)
    c = torch.maximum(confidence.double(), bound)
    q = rest * ((1 - c) / rest_mass)[:, None]
    q[rows, labels] = c
    return q.to(probs.dtype)


def wclip_log(log_probs: torch.Tensor, labels: torch.Tensor, eta: float = 0.5, m: float = 0.7) -> torch.Tensor:
    """``wclip`` on a target given as log-probabilities, returning
    log-probabilities: only the two entries it moves mass between (top class
    and label, on wrong rows) are recomputed, in float64; every other entry
    keeps its log value exactly, however small its probability."""
    _check_unit("eta", eta)
    _check_unit("m", m)
    lp = log_probs.double()
    top = lp.argmax(1)
    rows = torch.arange(lp.shape[0], device=lp.device)
    p_top, p_y = lp[rows, top].exp(), lp[rows, labels].exp()
    delta = torch.minimum(eta * p_top, m * (p_top - p_y))
    wrong = top != labels
    # where, not a boolean mask: a mask's row count would be read back to the host
    out = lp.clone()
    out[rows, top] = torch.where(wrong, (p_top - delta).log(), lp[rows, top])
    out[rows, labels] = torch.where(wrong, (p_y + delta).log(), lp[rows, labels])
    return out.to(log_probs.dtype)


def cudp_projection_log(log_probs: torch.Tensor, labels: torch.Tensor, log_confidence: torch.Tensor,
                        log_doubt: torch.Tensor | None = None, check: bool = True) -> torch.Tensor:
    """``cudp_projection`` in log space: log q_y = log c and log q_j = log(1 - c)
    + log p_j - log(1 - p_y) for j != y, with c raised to the rank bound
    m' / (1 - p_y + m') where needed. ``log_confidence`` is log c(x);
    ``log_doubt`` is log(1 - c(x)) when known more precisely than from c
    (e.g. the log-sum of a calibrated teacher's other classes), else it is
    computed as log1p(-c). Returns log-probabilities in ``log_probs``' dtype.
    ``check`` False skips the range check of c, which reads a value back to
    the host (a training step's c comes from a log-softmax or a clamp).
    Nothing else here reads back, so a GPU step never waits on it."""
    if log_confidence.shape != labels.shape:
        raise ValueError(f"confidence must have one value per example, got {tuple(log_confidence.shape)}")
    if check and (log_confidence > 1e-12).any():
        raise ValueError("confidence values c(x) must be in [0, 1] (log c <= 0)")
    lp = log_probs.double()
    k = lp.shape[1]
    rows = torch.arange(lp.shape[0], device=lp.device)
    rest = lp.clone()
    rest[rows, labels] = -torch.inf
    log_rest = torch.logsumexp(rest, 1)
    # rows with no non-target mass at all: spread 1 - c uniformly over the other classes
    # (selected with where, not a mask, so that no row count is read back)
    empty = torch.isneginf(log_rest)
    uniform = torch.full_like(rest, -math.log(k - 1))
    uniform[rows, labels] = -torch.inf
    rest = torch.where(empty[:, None], uniform, rest)
    log_rest = torch.logsumexp(rest, 1)
    log_c = log_confidence.double().clamp_max(0.0)
    log_1mc = torch.log1p(-log_c.exp()) if log_doubt is None else log_doubt.double()
    log_runner_up = rest.max(1).values
    log_bound = log_runner_up - torch.logaddexp(log_rest, log_runner_up)
    raise_to_bound = log_bound > log_c
    log_c = torch.where(raise_to_bound, log_bound, log_c)
    log_1mc = torch.where(raise_to_bound, log_rest - torch.logaddexp(log_rest, log_runner_up), log_1mc)
    q = rest + (log_1mc - log_rest)[:, None]
    q[rows, labels] = log_c
    return q.to(log_probs.dtype)
