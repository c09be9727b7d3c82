"""A corpus of formulas as ML notes write them, each with the bindings a check block would make.

Every ``Case`` holds a correct formula, a function that builds its bindings with real torch computations (the
reference the formula must match is computed by torch, never by the formula), and subtly wrong variants that must
fail on the same bindings. ``UNCHECKABLE`` formulas state nothing a numerical check can evaluate; they must be
reported as not evaluable, never pass and never be blamed as a numeric mismatch. Used by tests/test_corpus.py and
bench/formulas.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

D = torch.float64


@dataclass(frozen=True)
class Case:
    topic: str
    latex: str
    bind: Callable[[], dict]
    wrong: tuple[str, ...] = ()


def g(*shape: int, scale: float = 1.0, shift: float = 0.0):
    return torch.randn(*shape, dtype=D) * scale + shift


def probs(*shape: int):
    return torch.softmax(torch.randn(*shape, dtype=D) * 1.5, -1)


def grid():
    return torch.linspace(-3, 3, 13, dtype=D)


CASES: list[Case] = []


def case(topic: str, latex: str, wrong: tuple[str, ...] | str = ()):
    def register(bind):
        CASES.append(Case(topic, latex, bind, (wrong,) if isinstance(wrong, str) else tuple(wrong)))
        return bind
    return register


# Activations ---------------------------------------------------------------------------------------------------

@case("activations", r"\sigma(x) = \frac{1}{1 + e^{-x}}", (r"\sigma(x) = \frac{1}{1 + e^{x}}",
                                                              r"\sigma(x) = \frac{1}{1 - e^{-x}}"))
def _():
    x = grid()
    return dict(x=x, sigma=torch.sigmoid(x))


@case("activations", r"\tanh(x) = \frac{e^x - e^{-x}}{e^x + e^{-x}}", r"\tanh(x) = \frac{e^x + e^{-x}}{e^x - e^{-x}}")
def _():
    x = grid()
    return dict(x=x, tanh=torch.tanh(x))


@case("activations", r"\tanh(x) = 2\sigma(2x) - 1", r"\tanh(x) = 2\sigma(x) - 1")
def _():
    x = grid()
    return dict(x=x, tanh=torch.tanh(x))


@case("activations", r"\mathrm{ReLU}(x) = \max(0, x)", r"\mathrm{ReLU}(x) = \max(0, -x)")
def _():
    x = grid()
    return dict(x=x, ReLU=torch.relu(x))


@case("activations", r"\text{LeakyReLU}(x) = \max(\alpha x, x)", r"\text{LeakyReLU}(x) = \min(\alpha x, x)")
def _():
    x = grid()
    return dict(x=x, alpha=0.01, LeakyReLU=F.leaky_relu(x, 0.01))


@case("activations", r"\mathrm{ELU}(x) = \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}",
      r"\mathrm{ELU}(x) = \begin{cases} x & x > 0 \\ \alpha (e^x + 1) & x \le 0 \end{cases}")
def _():
    x = grid()
    return dict(x=x, alpha=1.0, ELU=F.elu(x, 1.0))


@case("activations", r"\mathrm{GELU}(x) = x \cdot \Phi(x)", r"\mathrm{GELU}(x) = \Phi(x)")
def _():
    x = grid()
    return dict(x=x, Phi=torch.distributions.Normal(0.0, 1.0).cdf(x), GELU=F.gelu(x))


@case("activations", r"\mathrm{GELU}(x) = \frac{x}{2}\left[1 + \mathrm{erf}\left(\frac{x}{\sqrt{2}}\right)\right]",
      r"\mathrm{GELU}(x) = \frac{x}{2}\left[1 + \mathrm{erf}(x)\right]")
def _():
    x = grid()
    return dict(x=x, GELU=F.gelu(x))


@case("activations", r"\mathrm{GELU}(x) = 0.5 x \left(1 + \tanh\left[\sqrt{2/\pi}\,(x + 0.044715 x^3)\right]\right)",
      r"\mathrm{GELU}(x) = 0.5 x \left(1 + \tanh\left[\sqrt{2\pi}\,(x + 0.044715 x^3)\right]\right)")
def _():
    x = grid()
    return dict(x=x, GELU=F.gelu(x, approximate="tanh"))


@case("activations", r"\mathrm{SiLU}(x) = x \cdot \sigma(x)", r"\mathrm{SiLU}(x) = x \cdot \sigma(-x)")
def _():
    x = grid()
    return dict(x=x, SiLU=F.silu(x))


@case("activations", r"\text{Swish}_\beta(x) = x \, \sigma(\beta x)", r"\text{Swish}_\beta(x) = \beta x \, \sigma(x)")
def _():
    x = grid()
    return dict(x=x, beta=1.7, Swish_beta=x * torch.sigmoid(1.7 * x))


@case("activations", r"\mathrm{Softplus}(x) = \log(1 + e^x)", r"\mathrm{Softplus}(x) = \log(1 + e^{-x})")
def _():
    x = grid()
    return dict(x=x, Softplus=F.softplus(x))


@case("activations", r"\mathrm{softplus}'(x) = \sigma(x)", r"\mathrm{softplus}'(x) = \sigma(-x)")
def _():
    return dict(x=grid())


@case("activations", r"\frac{d}{dx}\tanh(x) = 1 - \tanh^2(x)", r"\frac{d}{dx}\tanh(x) = 1 + \tanh^2(x)")
def _():
    return dict(x=grid())


@case("activations", r"\sigma'(x) = \sigma(x)\,(1 - \sigma(x))", r"\sigma'(x) = \sigma(x)^2")
def _():
    return dict(x=grid())


@case("activations", r"g = \text{tanh'}(x)", r"g = \tanh(x)")
def _():
    x = grid()
    return dict(x=x, g=1 - torch.tanh(x) ** 2)


@case("activations", r"\mathrm{Mish}(x) = x \tanh(\mathrm{softplus}(x))", r"\mathrm{Mish}(x) = x \tanh(x)")
def _():
    x = grid()
    return dict(x=x, Mish=F.mish(x))


@case("activations", r"\mathrm{ReLU6}(x) = \min(\max(0, x), 6)", r"\mathrm{ReLU6}(x) = \max(\min(0, x), 6)")
def _():
    x = grid() * 3
    return dict(x=x, ReLU6=F.relu6(x))


@case("activations", r"\mathrm{softsign}(x) = \frac{x}{1 + |x|}", r"\mathrm{softsign}(x) = \frac{x}{1 + x^2}")
def _():
    x = grid()
    return dict(x=x, softsign=F.softsign(x))


@case("activations",
      r"\mathrm{SELU}(x) = \lambda \begin{cases} x & \text{if } x > 0 \\ \alpha e^x - \alpha & \text{otherwise} "
      r"\end{cases}",
      r"\mathrm{SELU}(x) = \lambda \begin{cases} x & \text{if } x > 0 \\ \alpha e^x + \alpha & \text{otherwise} "
      r"\end{cases}")
def _():
    x = grid()
    return dict(x=x, lambda_=1.0507009873554804934193349852946, alpha=1.6732632423543772848170429916717, SELU=F.selu(x))


@case("activations", r"\mathrm{hardsigmoid}(x) = \max\left(0, \min\left(1, \frac{x}{6} + \frac{1}{2}\right)\right)",
      r"\mathrm{hardsigmoid}(x) = \max\left(0, \min\left(1, \frac{x}{6}\right)\right)")
def _():
    x = grid() * 2
    return dict(x=x, hardsigmoid=F.hardsigmoid(x))


@case("activations", r"\mathrm{ReLU}'(x) = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}",
      r"\mathrm{ReLU}'(x) = \begin{cases} 1 & x \ge 0 \\ 0 & x < 0 \end{cases}")
def _():
    return dict(x=torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=D))


@case("activations", r"y = \sigma(2x)")
def _():
    x = grid()  # a std named sigma bound earlier in the note must not turn \sigma(…) into a product
    return dict(x=x, sigma=torch.tensor(3.0), y=torch.sigmoid(2 * x))


# Softmax and friends -------------------------------------------------------------------------------------------

@case("softmax", r"\mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_{j=1}^{K} e^{z_j}}",
      (r"\mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_{j=1}^{K} e^{z_i}}",
       r"\mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_{j=1}^{K-1} e^{z_j}}"))
def _():
    z = g(3, 5)
    return dict(z=z, K=5, softmax=torch.softmax(z, -1))


@case("softmax", r"p_i = \frac{\exp(z_i)}{\sum_j \exp(z_j)}",
      (r"p_i = \frac{\exp(z_i)}{\sum_j \exp(z_i)}", r"p_i = \frac{\exp(z_i)}{\sum_j z_j}"))
def _():
    z = g(6)
    return dict(z=z, p=torch.softmax(z, 0))


@case("softmax", r"p_i = \frac{\exp(z_i - \max_j z_j)}{\sum_k \exp(z_k - \max_j z_j)}",
      r"p_i = \frac{\exp(z_i - \max_j z_j)}{\sum_k \exp(z_k)}")
def _():
    z = g(4, 6, scale=3)
    return dict(z=z, p=torch.softmax(z, -1))


@case("softmax", r"\log \mathrm{softmax}(z)_i = z_i - \log \sum_j e^{z_j}",
      r"\log \mathrm{softmax}(z)_i = z_i + \log \sum_j e^{z_j}")
def _():
    return dict(z=g(7))


@case("softmax", r"\mathrm{LSE}(x) = \log \sum_{i=1}^{n} e^{x_i}", r"\mathrm{LSE}(x) = \sum_{i=1}^{n} \log e^{x_i}")
def _():
    x = g(3, 8)
    return dict(x=x, n=8, LSE=torch.logsumexp(x, -1))


@case("softmax", r"p_i = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)}", r"p_i = \frac{\exp(z_i T)}{\sum_j \exp(z_j T)}")
def _():
    z = g(5)
    return dict(z=z, T=2.5, p=torch.softmax(z / 2.5, 0))


@case("softmax", r"\pi(a \mid s) = \frac{e^{Q(s, a) / \tau}}{\sum_{b} e^{Q(s, b) / \tau}}",
      r"\pi(a \mid s) = \frac{e^{Q(s, a) / \tau}}{\sum_{b} e^{Q(s, b)}}")
def _():
    q = g(4, 3)
    return dict(Q=q, s=2, tau=0.5, pi=torch.softmax(q[2] / 0.5, -1))


@case("softmax", r"\mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_j e^{z_j}}")
def _():
    z = g(4, 7)
    return dict(z=z, softmax=torch.softmax(z, -1))


# Losses --------------------------------------------------------------------------------------------------------

@case("losses", r"\mathrm{MSE} = \frac{1}{n} \sum_{i=1}^{n} (y_i - \hat{y}_i)^2",
      (r"\mathrm{MSE} = \frac{1}{n} \sum_{i=1}^{n} (y_i - \hat{y}_i)",
      r"\mathrm{MSE} = \sum_{i=1}^{n} (y_i - \hat{y}_i)^2"))
def _():
    y, y_hat = g(10), g(10)
    return dict(y=y, y_hat=y_hat, n=10, MSE=F.mse_loss(y_hat, y))


@case("losses", r"\mathcal{L} = \frac{1}{n} \sum_{i=1}^{n} \left|y_i - \hat{y}_i\right|",
      r"\mathcal{L} = \left|\frac{1}{n} \sum_{i=1}^{n} (y_i - \hat{y}_i)\right|")
def _():
    y, y_hat = g(9), g(9)
    return dict(y=y, y_hat=y_hat, n=9, L=F.l1_loss(y_hat, y))


@case("losses", r"\mathrm{RMSE} = \sqrt{\frac{1}{N}\sum_{n=1}^{N}(\hat{y}_n - y_n)^2}",
      r"\mathrm{RMSE} = \frac{1}{N}\sqrt{\sum_{n=1}^{N}(\hat{y}_n - y_n)^2}")
def _():
    y, y_hat = g(12), g(12)
    return dict(y=y, y_hat=y_hat, N=12, RMSE=F.mse_loss(y_hat, y).sqrt())


@case("losses", r"L = -\frac{1}{N} \sum_{i=1}^{N} \left[ y_i \log p_i + (1 - y_i) \log(1 - p_i) \right]",
      (r"L = -\frac{1}{N} \sum_{i=1}^{N} \left[ y_i \log p_i + (1 - y_i) \log p_i \right]",
       r"L = \frac{1}{N} \sum_{i=1}^{N} \left[ y_i \log p_i + (1 - y_i) \log(1 - p_i) \right]"))
def _():
    p = torch.rand(8, dtype=D) * 0.9 + 0.05
    y = (torch.rand(8, dtype=D) > 0.5).to(D)
    return dict(p=p, y=y, N=8, L=F.binary_cross_entropy(p, y))


@case("losses", r"\ell = \max(z, 0) - z y + \log(1 + e^{-|z|})", r"\ell = \max(z, 0) + z y + \log(1 + e^{-|z|})")
def _():
    z = g(8, scale=2)
    y = (torch.rand(8, dtype=D) > 0.5).to(D)
    return dict(z=z, y=y, ell=F.binary_cross_entropy_with_logits(z, y, reduction="none"))


@case("losses", r"\mathcal{L}_{\mathrm{CE}} = -\sum_{c=1}^{C} y_c \log \hat{y}_c",
      r"\mathcal{L}_{\mathrm{CE}} = -\sum_{c=1}^{C} \hat{y}_c \log y_c")
def _():
    logits = g(5)
    target = torch.tensor(3)
    return dict(y=F.one_hot(target, 5).to(D), y_hat=torch.softmax(logits, 0), C=5,
                L_CE=F.cross_entropy(logits[None], target[None]))


@case("losses", r"L = -\frac{1}{N} \sum_{n=1}^{N} \sum_{c=1}^{C} y_{nc} \log p_{nc}",
      r"L = -\frac{1}{N} \sum_{n=1}^{N} \sum_{c=1}^{C} y_{nc} p_{nc}")
def _():
    logits, target = g(6, 5), torch.randint(0, 5, (6,))
    return dict(L=F.cross_entropy(logits, target), N=6, C=5, y=F.one_hot(target, 5), p=torch.softmax(logits, -1))


@case("losses", r"\ell = -z_y + \log \sum_{j} e^{z_j}", r"\ell = z_y - \log \sum_{j} e^{z_j}")
def _():
    z = g(6)
    return dict(z=z, z_y=z[4], ell=F.cross_entropy(z[None], torch.tensor([4])))


@case("losses", r"y_k^{\text{LS}} = y_k (1 - \alpha) + \frac{\alpha}{K}",
      r"y_k^{\text{LS}} = y_k (1 - \alpha) + \alpha")
def _():
    y = F.one_hot(torch.tensor(2), 6).to(D)
    return dict(y=y, alpha=0.1, K=6, y_LS=y * 0.9 + 0.1 / 6)


@case("losses", r"L = \max(0, 1 - y \cdot f(x))", r"L = \max(0, 1 + y \cdot f(x))")
def _():
    f = g(10)
    y = torch.where(torch.rand(10, dtype=D) > 0.5, 1.0, -1.0).to(D)
    return dict(f=f, y=y, x=g(10), L=torch.clamp(1 - y * f, min=0))


@case("losses",
      r"L_\delta(a) = \begin{cases} \frac{1}{2} a^2 & |a| \le \delta \\ \delta \left(|a| - "
      r"\frac{1}{2}\delta\right) & "
      r"\text{otherwise} \end{cases}",
      r"L_\delta(a) = \begin{cases} \frac{1}{2} a^2 & |a| \le \delta \\ \delta \left(|a| - \delta\right) & "
      r"\text{otherwise} \end{cases}")
def _():
    a = grid()
    return dict(a=a, delta=1.3, L_delta=F.huber_loss(a, torch.zeros_like(a), reduction="none", delta=1.3))


@case("losses", r"\mathrm{SmoothL1}(x) = \begin{cases} 0.5 x^2 / \beta & \text{if } |x| < \beta \\ |x| - 0.5 \beta & "
      r"\text{otherwise} \end{cases}",
      r"\mathrm{SmoothL1}(x) = \begin{cases} 0.5 x^2 & \text{if } |x| < \beta \\ |x| - 0.5 \beta & \text{otherwise} "
      r"\end{cases}")
def _():
    x = torch.linspace(-1, 1, 21, dtype=D)
    return dict(x=x, beta=0.5, SmoothL1=F.smooth_l1_loss(x, torch.zeros_like(x), reduction="none", beta=0.5))


@case("losses", r"\mathrm{FL}(p_t) = -\alpha_t (1 - p_t)^\gamma \log(p_t)",
      r"\mathrm{FL}(p_t) = -\alpha_t p_t^\gamma \log(p_t)")
def _():
    p_t = torch.rand(7, dtype=D) * 0.9 + 0.05
    return dict(p_t=p_t, alpha_t=0.25, gamma=2.0, FL=-0.25 * (1 - p_t) ** 2 * torch.log(p_t))


@case("losses", r"L = 1 - \frac{2 \sum_i p_i g_i + \epsilon}{\sum_i p_i + \sum_i g_i + \epsilon}",
      r"L = 1 - \frac{\sum_i p_i g_i + \epsilon}{\sum_i p_i + \sum_i g_i + \epsilon}")
def _():
    p = torch.rand(16, dtype=D)
    target = (torch.rand(16, dtype=D) > 0.5).to(D)
    eps = 1.0
    return dict(p=p, g=target, epsilon=eps, L=1 - (2 * (p * target).sum() + eps) / (p.sum() + target.sum() + eps))


@case("losses", r"L = \max\left(\|a - p\|_2 - \|a - n\|_2 + m, 0\right)",
      r"L = \max\left(\|a - n\|_2 - \|a - p\|_2 + m, 0\right)")
def _():
    a, p, n = g(6), g(6) * 0.3, g(6) * 2
    return dict(a=a, p=p, n=n, m=1.0, L=F.triplet_margin_loss(a[None], p[None], n[None], margin=1.0, eps=0))


@case("losses",
      r"\mathcal{L}_{\text{VAE-KL}} = -\frac{1}{2} \sum_{j=1}^{J} \left(1 + \log \sigma_j^2 - \mu_j^2 "
      r"- \sigma_j^2\right)",

      r"\mathcal{L}_{\text{VAE-KL}} = \frac{1}{2} \sum_{j=1}^{J} \left(1 + \log \sigma_j^2 - \mu_j^2 "
      r"- \sigma_j^2\right)")
def _():
    mu, sigma = g(4), torch.rand(4, dtype=D) + 0.5
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0))
    return dict(mu=mu, sigma=sigma, J=4, L_VAE_KL=kl.sum())


@case("losses", r"\mathcal{L}_{\mathrm{NLL}} = -\frac{1}{N}\sum_{i=1}^{N} \log p_{i, y_i}",
      r"\mathcal{L}_{\mathrm{NLL}} = -\frac{1}{N}\sum_{i=1}^{N} p_{i, y_i}")
def _():
    logits, target = g(5, 4), torch.randint(0, 4, (5,))
    return dict(p=torch.softmax(logits, -1), y=target, N=5, L_NLL=F.cross_entropy(logits, target))


@case("losses", r"L^{\text{CLIP}} = \min\left(r A, \operatorname{clip}(r, 1 - \epsilon, 1 + \epsilon) A\right)",
      r"L^{\text{CLIP}} = \max\left(r A, \operatorname{clip}(r, 1 - \epsilon, 1 + \epsilon) A\right)")
def _():
    r, a = torch.rand(10, dtype=D) + 0.5, g(10)
    return dict(r=r, A=a, epsilon=0.2, L_CLIP=torch.minimum(r * a, torch.clamp(r, 0.8, 1.2) * a))


@case("losses",
      r"\mathcal{L}_{i,j} = -\log \frac{\exp(\text{sim}(z_i, z_j)/\tau)}{\sum_{k=1}^{2N} "
      r"\mathbb{1}_{[k \neq i]} "
      r"\exp(\text{sim}(z_i, z_k)/\tau)}",

      r"\mathcal{L}_{i,j} = -\log \frac{\exp(\text{sim}(z_i, z_j)/\tau)}{\sum_{k=1}^{2N} "
      r"\exp(\text{sim}(z_i, z_k)/\tau)}")
def _():
    n, tau = 3, 0.5
    z = g(2 * n, 4)
    sim = F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1)
    others = torch.logsumexp((sim / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), -math.inf), -1)
    return dict(z=z, N=n, tau=tau, L=others[:, None] - sim / tau,
                sim=lambda a, b: F.cosine_similarity(a, b, dim=-1))


# Information theory --------------------------------------------------------------------------------------------

@case("information", r"H(X) = -\sum_{x} p(x) \log p(x)", (r"H(X) = \sum_{x} p(x) \log p(x)",
                                                           r"H(X) = -\sum_{x} \log p(x)"))
def _():
    p = probs(8)
    return dict(p=p, H=torch.distributions.Categorical(probs=p).entropy())


@case("information", r"H = -\sum_{i=1}^{n} p_i \log_2 p_i", r"H = -\sum_{i=1}^{n} p_i \log p_i")
def _():
    p = probs(6)
    return dict(p=p, n=6, H=torch.distributions.Categorical(probs=p).entropy() / math.log(2))


@case("information", r"H(p, q) = -\sum_x p(x) \log q(x)", r"H(p, q) = -\sum_x q(x) \log p(x)")
def _():
    p, q = probs(7), probs(7)
    return dict(p=p, q=q, H=-(p * q.log()).sum())


@case("information", r"D_{\mathrm{KL}}(P \,\|\, Q) = \sum_x P(x) \log \frac{P(x)}{Q(x)}",
      (r"D_{\mathrm{KL}}(P \,\|\, Q) = \sum_x P(x) \log \frac{Q(x)}{P(x)}",
       r"D_{\mathrm{KL}}(P \,\|\, Q) = \sum_x Q(x) \log \frac{P(x)}{Q(x)}"))
def _():
    p, q = probs(10), probs(10)
    return dict(P=p, Q=q, D_KL=F.kl_div(q.log(), p, reduction="sum"))


@case("information", r"D_{\mathrm{KL}}(P \mid\mid Q) = \sum_{i} P_i \left(\log P_i - \log Q_i\right)",
      r"D_{\mathrm{KL}}(P \mid\mid Q) = \sum_{i} Q_i \left(\log P_i - \log Q_i\right)")
def _():
    p, q = probs(3, 5), probs(3, 5)
    return dict(P=p, Q=q, D_KL=(p * (p.log() - q.log())).sum(-1))


@case("information", r"I(X;Y) = \sum_{x}\sum_{y} p(x, y) \log \frac{p(x, y)}{p_X(x) \, p_Y(y)}",
      r"I(X;Y) = \sum_{x}\sum_{y} p(x, y) \log \frac{p(x, y)}{p_X(x) + p_Y(y)}")
def _():
    joint = torch.softmax(g(4 * 3), 0).reshape(4, 3)
    px, py = joint.sum(1), joint.sum(0)
    return dict(p=joint, p_X=px, p_Y=py, I=(joint * (joint / (px[:, None] * py[None, :])).log()).sum())


@case("information",
      r"\mathrm{JSD} = \frac{1}{2} \sum_x P(x) \log \frac{P(x)}{M(x)} + \frac{1}{2} \sum_x Q(x) \log "
      r"\frac{Q(x)}{M(x)}",
      r"\mathrm{JSD} = \frac{1}{2} \sum_x P(x) \log \frac{M(x)}{P(x)} + \frac{1}{2} \sum_x Q(x) \log \frac{Q(x)}{M(x)}")
def _():
    p, q = probs(6), probs(6)
    m = (p + q) / 2
    kl_pm, kl_qm = F.kl_div(m.log(), p, reduction="sum"), F.kl_div(m.log(), q, reduction="sum")
    return dict(P=p, Q=q, M=m, JSD=0.5 * kl_pm + 0.5 * kl_qm)


@case("information", r"\mathrm{PPL} = \exp\left(-\frac{1}{N} \sum_{i=1}^{N} \log p_i\right)",
      r"\mathrm{PPL} = \exp\left(\frac{1}{N} \sum_{i=1}^{N} \log p_i\right)")
def _():
    p = torch.rand(12, dtype=D) * 0.5 + 0.1
    return dict(p=p, N=12, PPL=torch.exp(-p.log().mean()))


@case("information", r"\mathrm{logit}(p) = \log \frac{p}{1 - p}", r"\mathrm{logit}(p) = \log \frac{1 - p}{p}")
def _():
    p = torch.rand(9, dtype=D) * 0.9 + 0.05
    return dict(p=p, logit=torch.logit(p))


@case("information", r"H(X) = -\left(p_1 \log p_1 + p_2 \log p_2 + \cdots + p_n \log p_n\right)",
      r"H(X) = -\left(p_1 \log p_1 + p_2 \log p_2 + \cdots + p_{n-1} \log p_{n-1}\right)")
def _():
    p = probs(5)
    return dict(p=p, n=5, H=-(p * p.log()).sum())


# Probability ---------------------------------------------------------------------------------------------------

@case("probability", r"p(x) = \frac{1}{\sqrt{2\pi\sigma^2}} \exp\left(-\frac{(x - \mu)^2}{2\sigma^2}\right)",
      (r"p(x) = \frac{1}{2\pi\sigma^2} \exp\left(-\frac{(x - \mu)^2}{2\sigma^2}\right)",
       r"p(x) = \frac{1}{\sqrt{2\pi}\sigma^2} \exp\left(-\frac{(x - \mu)^2}{2\sigma^2}\right)"))
def _():
    x = grid()
    return dict(x=x, mu=0.4, sigma=1.3, p=torch.distributions.Normal(0.4, 1.3).log_prob(x).exp())


@case("probability", r"\log p(x) = -\frac{1}{2} \log 2\pi\sigma^2 - \frac{(x - \mu)^2}{2\sigma^2}",
      (r"\log p(x) = -\frac{1}{2} \log 2\pi - \frac{(x - \mu)^2}{2\sigma^2}",
       r"\log p(x) = -\log 2\pi\sigma^2 - \frac{(x - \mu)^2}{2\sigma^2}"))
def _():
    x = grid()
    return dict(x=x, mu=0.4, sigma=1.7, p=torch.distributions.Normal(0.4, 1.7).log_prob(x).exp())


@case("probability",
      r"\log p(x) = -\frac{1}{2}(x - \mu)^\top \Sigma^{-1} (x - \mu) - \frac{1}{2}\log \det(2\pi\Sigma)",
      r"\log p(x) = -\frac{1}{2}(x - \mu)^\top \Sigma (x - \mu) - \frac{1}{2}\log \det(2\pi\Sigma)")
def _():
    a = g(3, 3)
    cov = a @ a.T + 3 * torch.eye(3, dtype=D)
    mu, x = g(3), g(3)
    dist = torch.distributions.MultivariateNormal(mu, cov)
    return dict(x=x, mu=mu, Sigma=cov, p=dist.log_prob(x).exp())


@case("probability", r"P(y) = p^y (1 - p)^{1 - y}", r"P(y) = p^{1 - y} (1 - p)^y")
def _():
    y = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=D)
    return dict(y=y, p=0.3, P=torch.distributions.Bernoulli(probs=torch.tensor(0.3, dtype=D)).log_prob(y).exp())


@case("probability", r"L = \prod_{i=1}^{n} p_i", (r"L = \prod_{i=1}^{n-1} p_i", r"L = \prod_{i=2}^{n} p_i"))
def _():
    p = torch.rand(20, dtype=D) * 0.05 + 0.02  # a likelihood of order 1e-30: a relative tolerance matters
    return dict(p=p, n=20, L=torch.prod(p))


@case("probability", r"\log L = \sum_{i=1}^{n} \log p_i", r"\log L = \sum_{i=1}^{n} p_i")
def _():
    p = torch.rand(20, dtype=D) * 0.05 + 0.02
    return dict(p=p, n=20, L=torch.prod(p))


@case("probability", r"P(w_1, \dots, w_T) = \prod_{t=1}^{T} p_t", r"P(w_1, \dots, w_T) = \prod_{t=2}^{T} p_t")
def _():
    p = torch.rand(6, dtype=D) * 0.2 + 0.05
    return dict(p=p, T=6, P=torch.prod(p).to(torch.float32))


@case("probability", r"\gamma_{nk} = \frac{\pi_k \mathcal{N}_{nk}}{\sum_{j=1}^{K} \pi_j \mathcal{N}_{nj}}",
      r"\gamma_{nk} = \frac{\pi_k \mathcal{N}_{nk}}{\sum_{j=1}^{K} \mathcal{N}_{nj}}")
def _():
    pi = probs(3)
    dens = torch.rand(5, 3, dtype=D)
    return dict(pi=pi, N=dens, K=3, gamma=(pi * dens) / (pi * dens).sum(-1, keepdim=True))


@case("probability", r"P(y = 1 \mid x) = \sigma(w^\top x + b)", r"P(y = 1 \mid x) = \sigma(w^\top x - b)")
def _():
    w, x = g(4), g(4)
    return dict(w=w, x=x, b=0.3, P=torch.sigmoid(w @ x + 0.3))


@case("probability", r"\bar{x} = \frac{1}{n} \sum_{i=1}^{n} x_i", r"\bar{x} = \frac{1}{n-1} \sum_{i=1}^{n} x_i")
def _():
    x = g(11)
    return dict(x=x, n=11, x_bar=x.mean())


@case("probability", r"s^2 = \frac{1}{n - 1} \sum_{i=1}^{n} (x_i - \bar{x})^2",
      r"s^2 = \frac{1}{n} \sum_{i=1}^{n} (x_i - \bar{x})^2")
def _():
    x = g(9)
    return dict(x=x, n=9, x_bar=x.mean(), s=x.std())


@case("probability", r"\mathrm{Cov}(X, Y) = \frac{1}{n - 1} \sum_{i=1}^{n} (x_i - \bar{x})(y_i - \bar{y})",
      r"\mathrm{Cov}(X, Y) = \frac{1}{n} \sum_{i=1}^{n} (x_i - \bar{x})(y_i - \bar{y})")
def _():
    x, y = g(10), g(10)
    return dict(x=x, y=y, n=10, x_bar=x.mean(), y_bar=y.mean(), Cov=torch.cov(torch.stack([x, y]))[0, 1])


@case("probability",
      r"\rho = \frac{\sum_i (x_i - \bar{x})(y_i - \bar{y})}{\sqrt{\sum_i (x_i - \bar{x})^2} "
      r"\sqrt{\sum_i (y_i - \bar{y})^2}}",
      r"\rho = \frac{\sum_i (x_i - \bar{x})(y_i - \bar{y})}{\sum_i (x_i - \bar{x})^2 \sum_i (y_i - \bar{y})^2}")
def _():
    x = g(10)
    y = 0.5 * x + g(10)
    return dict(x=x, y=y, x_bar=x.mean(), y_bar=y.mean(), rho=torch.corrcoef(torch.stack([x, y]))[0, 1])


@case("probability", r"\mathrm{Var}(X) = \mathbb{E}[X^2] - \mathbb{E}[X]^2",
      r"\mathrm{Var}(X) = \mathbb{E}[X]^2 - \mathbb{E}[X^2]")
def _():
    x = g(50, shift=1.0)
    return dict(X=x, Var=x.var(unbiased=False))


@case("probability", r"\mu = \sum_{x} x \, p(x)", r"\mu = \sum_{x} p(x)")
def _():
    p = probs(6)
    return dict(p=p, mu=(torch.arange(6, dtype=D) * p).sum())


@case("probability", r"z = \frac{x - \mu}{\sigma}", r"z = \frac{x - \mu}{\sigma^2}")
def _():
    x = g(20, scale=3, shift=2)
    return dict(x=x, mu=x.mean(), sigma=x.std(), z=(x - x.mean()) / x.std())


@case("probability", r"p(k) = \frac{\lambda^k e^{-\lambda}}{k!}", r"p(k) = \frac{\lambda^k e^{\lambda}}{k!}")
def _():
    k = torch.arange(6, dtype=D)
    return dict(k=k, lambda_=2.5, p=torch.distributions.Poisson(2.5).log_prob(k).exp())


@case("probability", r"P(X = k) = \binom{n}{k} p^k (1 - p)^{n - k}", r"P(X = k) = \binom{n}{k} p^k (1 - p)^{k}")
def _():
    k = torch.arange(7, dtype=D)
    return dict(k=k, n=6, p=0.3, P=torch.distributions.Binomial(6, torch.tensor(0.3, dtype=D)).log_prob(k).exp())


@case("probability", r"z = \mu + \sigma \odot \epsilon, \quad \epsilon \sim \mathcal{N}(0, I)",
      r"z = \mu + \sigma^2 \odot \epsilon, \quad \epsilon \sim \mathcal{N}(0, I)")
def _():
    mu, sigma, eps = g(5), torch.rand(5, dtype=D) + 0.5, g(5)
    return dict(mu=mu, sigma=sigma, epsilon=eps, z=mu + sigma * eps)


# Norms and distances -------------------------------------------------------------------------------------------

@case("norms", r"\|x\|_2 = \sqrt{\sum_{i} x_i^2}", r"\|x\|_2 = \sum_{i} x_i^2")
def _():
    return dict(x=g(6))


@case("norms", r"\|x\|_1 = \sum_{i=1}^{n} |x_i|", r"\|x\|_1 = \left|\sum_{i=1}^{n} x_i\right|")
def _():
    return dict(x=g(6), n=6)


@case("norms", r"\|x\|_\infty = \max_i |x_i|", r"\|x\|_\infty = \max_i x_i")
def _():
    return dict(x=torch.tensor([0.5, -3.0, 1.0, 2.0], dtype=D))


@case("norms", r"\|x\|_p = \left(\sum_{i} |x_i|^p\right)^{1/p}", r"\|x\|_p = \left(\sum_{i} |x_i|^p\right)^{p}")
def _():
    return dict(x=g(5), p=3.0)


@case("norms", r"\|W\|_F = \sqrt{\sum_{i}\sum_{j} W_{ij}^2}", r"\|W\|_F = \sum_{i}\sum_{j} |W_{ij}|")
def _():
    return dict(W=g(3, 4))


@case("norms", r"\|W\|_F^2 = \mathrm{tr}(W^\top W)", r"\|W\|_F^2 = \mathrm{tr}(W)^2")
def _():
    return dict(W=g(4, 4))


@case("norms", r"\|x\|^2 = x^\top x", r"\|x\|^2 = x^\top x + 1")
def _():
    return dict(x=g(7))


@case("norms", r"\|x\|_1 = |x_1| + |x_2| + \cdots + |x_n|", r"\|x\|_1 = |x_1| + |x_2| + \cdots + |x_{n-1}|")
def _():
    return dict(x=g(5), n=5)


@case("norms", r"\hat{x} = \frac{x}{\|x\|}", r"\hat{x} = \frac{x}{\|x\|^2}")
def _():
    x = g(6)
    return dict(x=x, x_hat=F.normalize(x, dim=0))


@case("norms", r"d(x, y) = \sqrt{\sum_{i=1}^{n} (x_i - y_i)^2}", r"d(x, y) = \sum_{i=1}^{n} (x_i - y_i)^2")
def _():
    x, y = g(5), g(5)
    return dict(x=x, y=y, n=5, d=torch.dist(x, y))


@case("norms", r"\cos\theta = \frac{a \cdot b}{\|a\| \, \|b\|}", r"\cos\theta = \frac{a \cdot b}{\|a\| + \|b\|}")
def _():
    a, b = g(6), g(6)
    return dict(a=a, b=b, theta=torch.acos(F.cosine_similarity(a, b, dim=0)))


@case("norms", r"d_M = \sqrt{(x - \mu)^\top \Sigma^{-1} (x - \mu)}", r"d_M = \sqrt{(x - \mu)^\top \Sigma (x - \mu)}")
def _():
    a = g(3, 3)
    cov = a @ a.T + torch.eye(3, dtype=D)
    x, mu = g(3), g(3)
    return dict(x=x, mu=mu, Sigma=cov, d_M=((x - mu) @ torch.linalg.solve(cov, x - mu)).sqrt())


@case("norms", r"R(w) = \lambda_1 \|w\|_1 + \lambda_2 \|w\|_2^2", r"R(w) = \lambda_1 \|w\|_2 + \lambda_2 \|w\|_1^2")
def _():
    w = g(8)
    return dict(w=w, lambda_1=0.1, lambda_2=0.01, R=0.1 * w.abs().sum() + 0.01 * (w ** 2).sum())


@case("norms", r"\langle x, y \rangle = \sum_{i} x_i y_i", r"\langle x, y \rangle = \sum_{i} x_i + y_i")
def _():
    return dict(x=g(5), y=g(5))


# Optimizers ----------------------------------------------------------------------------------------------------

def _step(optimizer_class, theta, grad, **options):
    w = torch.nn.Parameter(theta.clone())
    optimizer = optimizer_class([w], **options)
    w.grad = grad.clone()
    optimizer.step()
    return w.detach(), optimizer.state[w]


@case("optimizers", r"\theta_{t+1} = \theta_t - \eta \nabla_\theta L",
      r"\theta_{t+1} = \theta_t + \eta \nabla_\theta L")
def _():
    theta = g(4).requires_grad_()
    loss = (theta ** 2).sum() + theta.sum()
    new, _ = _step(torch.optim.SGD, theta.detach(), 2 * theta.detach() + 1, lr=0.1)
    return dict(theta=theta, L=loss, theta_t=theta.detach(), eta=0.1, theta_next=new)


@case("optimizers", r"\theta_{t+1} = \theta_t - \alpha \cdot g_t", r"\theta_{t+1} = \theta_t - \alpha \cdot g_t^2")
def _():
    theta, grad = g(4), g(4)
    new, _ = _step(torch.optim.SGD, theta, grad, lr=0.05)
    return dict(theta_t=theta, alpha=0.05, g_t=grad, theta_next=new)


@case("optimizers", r"\begin{aligned} v_t &= \mu v_{t-1} + g_t \\ \theta_t &= \theta_{t-1} - \eta v_t \end{aligned}",
      r"\begin{aligned} v_t &= \mu v_{t-1} + (1 - \mu) g_t \\ \theta_t &= \theta_{t-1} - \eta v_t \end{aligned}")
def _():
    theta, grad = g(4), g(4)
    w = torch.nn.Parameter(theta.clone())
    sgd = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    w.grad = grad.clone()
    sgd.step()
    v_prev = grad.clone() * 0.5
    sgd.state[w]["momentum_buffer"] = v_prev.clone()
    w.grad = grad.clone()
    before = w.detach().clone()
    sgd.step()
    return dict(mu=0.9, v_prev=v_prev, g_t=grad, v_t=sgd.state[w]["momentum_buffer"], theta_prev=before, eta=0.1,
                theta_t=w.detach())


@case("optimizers",
      r"\begin{aligned} m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\ v_t &= \beta_2 v_{t-1} + (1 - "
      r"\beta_2) g_t^2 "
 r"\end{aligned}",
      r"\begin{aligned} m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\ v_t &= \beta_2 v_{t-1} + (1 - "
      r"\beta_2) g_t "
      r"\end{aligned}")
def _():
    theta, grad = g(5), g(5)
    _, state = _step(torch.optim.Adam, theta, grad, lr=0.1)
    return dict(beta_1=0.9, beta_2=0.999, m_prev=torch.zeros(5, dtype=D), v_prev=torch.zeros(5, dtype=D), g_t=grad,
                m_t=state["exp_avg"], v_t=state["exp_avg_sq"])


@case("optimizers", r"\hat{m}_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat{v}_t = \frac{v_t}{1 - \beta_2^t}",
      r"\hat{m}_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat{v}_t = \frac{v_t}{1 - \beta_2}")
def _():
    m, v = g(5), torch.rand(5, dtype=D)
    return dict(m_t=m, v_t=v, t=3, beta_1=0.9, beta_2=0.999, m_hat_t=m / (1 - 0.9 ** 3), v_hat_t=v / (1 - 0.999 ** 3))


@case("optimizers", r"\theta_{t+1} = \theta_t - \alpha \cdot \frac{\hat{m}_t}{\sqrt{\hat{v}_t} + \varepsilon}",
      (r"\theta_{t+1} = \theta_t - \alpha \cdot \frac{\hat{m}_t}{\hat{v}_t + \varepsilon}",
       r"\theta_{t+1} = \theta_t - \alpha \cdot \frac{\hat{m}_t}{\sqrt{\hat{v}_t + \varepsilon}}"))
def _():
    theta, grad = g(5), g(5)
    new, state = _step(torch.optim.Adam, theta, grad, lr=0.1, eps=1e-3)
    return dict(theta_t=theta, alpha=0.1, m_hat_t=state["exp_avg"] / 0.1, v_hat_t=state["exp_avg_sq"] / 0.001,
                varepsilon=1e-3, theta_next=new)


@case("optimizers",
      r"\theta_t = \theta_{t-1} - \eta \left(\frac{\hat{m}_t}{\sqrt{\hat{v}_t} + \epsilon} + \lambda "
      r"\theta_{t-1}\right)",
      r"\theta_t = \theta_{t-1} - \eta \frac{\hat{m}_t}{\sqrt{\hat{v}_t} + \epsilon} + \lambda \theta_{t-1}")
def _():
    theta, grad = g(5), g(5)
    new, state = _step(torch.optim.AdamW, theta, grad, lr=0.1, weight_decay=0.1, eps=1e-3)
    return dict(theta_prev=theta, eta=0.1, m_hat_t=state["exp_avg"] / 0.1, v_hat_t=state["exp_avg_sq"] / 0.001,
                epsilon=1e-3, lambda_=0.1, theta_t=new)


@case("optimizers",
      r"\begin{aligned} s_t &= \rho s_{t-1} + (1 - \rho) g_t^2 \\ \theta_{t+1} &= \theta_t - "
      r"\frac{\alpha}{\sqrt{s_t} + \epsilon} g_t \end{aligned}",

      r"\begin{aligned} s_t &= \rho s_{t-1} + (1 - \rho) g_t^2 \\ \theta_{t+1} &= \theta_t - "
      r"\frac{\alpha}{s_t + \epsilon} g_t \end{aligned}")
def _():
    theta, grad = g(4), g(4)
    new, state = _step(torch.optim.RMSprop, theta, grad, lr=0.01, alpha=0.9, eps=1e-8)
    return dict(rho=0.9, s_prev=torch.zeros(4, dtype=D), g_t=grad, s_t=state["square_avg"], theta_t=theta, alpha=0.01,
                epsilon=1e-8, theta_next=new)


@case("optimizers", r"\theta_{t+1, i} = \theta_{t, i} - \frac{\alpha}{\sqrt{G_{t, i}} + \varepsilon} \cdot g_{t,i}",
      r"\theta_{t+1, i} = \theta_{t, i} - \frac{\alpha}{G_{t, i} + \varepsilon} \cdot g_{t,i}")
def _():
    theta, grad = g(4), g(4)
    new, _ = _step(torch.optim.Adagrad, theta, grad, lr=0.05, eps=1e-10)
    return dict(theta_t=theta, alpha=0.05, G_t=grad ** 2, varepsilon=1e-10, g_t=grad, theta_next=new)


@case("optimizers", r"v_t = (1 - \beta_2) \sum_{i=1}^{t} \beta_2^{t - i} g_i^2",
      r"v_t = (1 - \beta_2) \sum_{i=1}^{t} \beta_2^{i} g_i^2")
def _():
    grads = [g(3) for _ in range(4)]
    v = torch.zeros(3, dtype=D)
    for grad in grads:
        v = 0.99 * v + 0.01 * grad ** 2
    return dict(beta_2=0.99, t=4, g=grads, v_t=v)


@case("optimizers", r"G_t = \sum_{i=1}^{t} g_i^2", r"G_t = \sum_{i=1}^{t-1} g_i^2")
def _():
    grads = g(5, 3)
    return dict(t=5, g=grads, G_t=(grads ** 2).sum(0))


@case("optimizers", r"\bar{\theta}_t = \beta \bar{\theta}_{t-1} + (1 - \beta) \theta_t",
      r"\bar{\theta}_t = (1 - \beta) \bar{\theta}_{t-1} + \beta \theta_t")
def _():
    avg, theta = g(4), g(4)
    return dict(beta=0.99, theta_bar_prev=avg, theta_t=theta, theta_bar_t=0.99 * avg + 0.01 * theta)


@case("optimizers", r"\tilde{g} = g \cdot \min\left(1, \frac{c}{\|g\|}\right)",
      r"\tilde{g} = g \cdot \max\left(1, \frac{c}{\|g\|}\right)")
def _():
    grad = g(6) * 3
    w = torch.nn.Parameter(torch.zeros(6, dtype=D))
    w.grad = grad.clone()
    torch.nn.utils.clip_grad_norm_([w], max_norm=1.0)
    return dict(g=grad, c=1.0, g_tilde=w.grad)


@case("optimizers", r"\alpha_t = \alpha \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}",
      r"\alpha_t = \alpha \frac{1 - \beta_2^t}{1 - \beta_1^t}")
def _():
    return dict(alpha=1e-3, beta_1=0.9, beta_2=0.999, t=10, alpha_t=1e-3 * math.sqrt(1 - 0.999 ** 10) / (1 - 0.9 ** 10))


@case("optimizers", r"g_t = \nabla_\theta L + \lambda \theta", r"g_t = \nabla_\theta L - \lambda \theta")
def _():
    theta = g(4).requires_grad_()
    loss = (theta ** 3).sum()
    return dict(theta=theta, L=loss, lambda_=0.01, g_t=3 * theta.detach() ** 2 + 0.01 * theta.detach())


# Schedules -----------------------------------------------------------------------------------------------------

def _lr_after(scheduler_factory, steps: int, lr: float = 0.1) -> float:
    w = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([w], lr=lr)
    scheduler = scheduler_factory(optimizer)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


@case("schedules",
      r"\eta_t = \eta_{\min} + \frac{1}{2}(\eta_{\max} - \eta_{\min})\left(1 + "
      r"\cos\left(\frac{T_{cur}}{T_{\max}}\pi\right)\right)",

      r"\eta_t = \eta_{\min} + \frac{1}{2}(\eta_{\max} - \eta_{\min})\left(1 - "
      r"\cos\left(\frac{T_{cur}}{T_{\max}}\pi\right)\right)")
def _():
    lr = _lr_after(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.001), 7)
    return dict(eta_min=0.001, eta_max=0.1, T_cur=7, T_max=20, eta_t=lr)


@case("schedules", r"\eta_t = \eta_0 \gamma^{\mathrm{floor}(t / s)}", r"\eta_t = \eta_0 \gamma^{t / s}")
def _():
    lr = _lr_after(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 7)
    return dict(eta_0=0.1, gamma=0.5, t=7, s=3, eta_t=lr)


@case("schedules", r"\eta_t = \eta_0 \gamma^t", r"\eta_t = \eta_0 \gamma^{t+1}")
def _():
    lr = _lr_after(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), 5)
    return dict(eta_0=0.1, gamma=0.9, t=5, eta_t=lr)


@case("schedules", r"\eta_t = \eta_0 e^{-k t}", r"\eta_t = \eta_0 e^{k t}")
def _():
    return dict(eta_0=0.1, k=0.2, t=4, eta_t=0.1 * math.exp(-0.8))


@case("schedules", r"lrate = d_{\text{model}}^{-0.5} \cdot \min(step^{-0.5}, step \cdot warmup^{-1.5})",
      r"lrate = d_{\text{model}}^{-0.5} \cdot \max(step^{-0.5}, step \cdot warmup^{-1.5})")
def _():
    return dict(d_model=512, step=1000, warmup=4000, lrate=512 ** -0.5 * min(1000 ** -0.5, 1000 * 4000 ** -1.5))


@case("schedules", r"\eta_t = \eta_{\max} \min\left(1, \frac{t}{T_w}\right)",
      r"\eta_t = \eta_{\max} \max\left(1, \frac{t}{T_w}\right)")
def _():
    return dict(eta_max=0.1, t=30, T_w=100, eta_t=0.03)


@case("schedules", r"\eta_t = (\eta_0 - \eta_{\text{end}}) \left(1 - \frac{t}{T}\right)^{p} + \eta_{\text{end}}",
      r"\eta_t = (\eta_0 - \eta_{\text{end}}) \left(1 - \frac{t}{T}\right)^{p}")
def _():
    lr = _lr_after(lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=10, power=2.0), 4)
    end = 0.01  # torch's PolynomialLR decays to 0; with an end rate the schedule is shifted by it
    return dict(eta_0=0.1, eta_end=end, t=4, T=10, p=2.0, eta_t=(0.1 - end) / 0.1 * lr + end)


@case("schedules", r"\eta_t = \frac{\eta_0}{\sqrt{t}}", r"\eta_t = \frac{\eta_0}{t}")
def _():
    return dict(eta_0=0.5, t=16, eta_t=0.125)


# Normalisation -------------------------------------------------------------------------------------------------

@case("normalisation", r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}",
      (r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma + \epsilon}}", r"\hat{x} = \frac{x - \mu}{\sigma^2 + \epsilon}"))
def _():
    x = torch.randn(32, 4) * 3 + 1
    return dict(x=x, mu=x.mean(0), sigma=x.std(0, unbiased=False), epsilon=1e-5,
                x_hat=F.batch_norm(x, None, None, training=True, eps=1e-5))


@case("normalisation", r"y = \gamma \hat{x} + \beta", r"y = \gamma \hat{x} - \beta")
def _():
    x = torch.randn(16, 3)
    gamma, beta = torch.rand(3) + 0.5, torch.randn(3)
    return dict(x_hat=F.batch_norm(x, None, None, training=True), gamma=gamma, beta=beta,
                y=F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True))


@case("normalisation",
      r"\begin{aligned} \mu_B &= \frac{1}{m} \sum_{i=1}^{m} x^{(i)} \\ \sigma_B^2 &= \frac{1}{m} "
      r"\sum_{i=1}^{m} "

      r"(x^{(i)} - \mu_B)^2 \\ \hat{x}^{(i)} &= \frac{x^{(i)} - \mu_B}{\sqrt{\sigma_B^2 + "
      r"\varepsilon}} \\ y^{(i)} &= \gamma \hat{x}^{(i)} + \beta \end{aligned}",
      r"\begin{aligned} \mu_B &= \frac{1}{m} \sum_{i=1}^{m} x^{(i)} \\ \sigma_B^2 &= \frac{1}{m - 1} \sum_{i=1}^{m} "

      r"(x^{(i)} - \mu_B)^2 \\ \hat{x}^{(i)} &= \frac{x^{(i)} - \mu_B}{\sqrt{\sigma_B^2 + "
      r"\varepsilon}} \\ y^{(i)} &= \gamma \hat{x}^{(i)} + \beta \end{aligned}")
def _():
    x = g(8, 5)
    gamma, beta = torch.rand(5, dtype=D) + 0.5, g(5)
    return dict(x=x, m=8, sigma_B=x.var(0, unbiased=False).sqrt(), varepsilon=1e-5, gamma=gamma, beta=beta,
                y=F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True, eps=1e-5))


@case("normalisation", r"\mu = \frac{1}{H} \sum_{i=1}^{H} a_i", r"\mu = \frac{1}{H} \sum_{i=1}^{H-1} a_i")
def _():
    a = g(4, 6)  # a batch of 4 layers' activations: the sum runs over the last dimension
    return dict(a=a, H=6, mu=a.mean(-1))


@case("normalisation", r"\sigma = \sqrt{\frac{1}{H} \sum_{i=1}^{H} (a_i - \mu)^2}",
      r"\sigma = \frac{1}{H} \sum_{i=1}^{H} (a_i - \mu)^2")
def _():
    a = g(4, 6)
    return dict(a=a, H=6, mu=a.mean(-1), sigma=a.std(-1, unbiased=False))


@case("normalisation", r"y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \gamma + \beta",
      r"y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \beta + \gamma")
def _():
    h = torch.randn(2, 5, 8)
    gamma, beta = torch.rand(8) + 0.5, torch.randn(8)
    return dict(x=h, mu=h.mean(-1, keepdim=True), sigma=h.std(-1, unbiased=False, keepdim=True), epsilon=1e-5,
                gamma=gamma, beta=beta, y=F.layer_norm(h, (8,), gamma, beta, eps=1e-5))


@case("normalisation",
      r"\bar{a}_i = \frac{a_i}{\mathrm{RMS}(a)} g_i, \quad \text{where} \quad \mathrm{RMS}(a) = "
      r"\sqrt{\frac{1}{n} \sum_{i=1}^{n} a_i^2}",

      r"\bar{a}_i = \frac{a_i}{\mathrm{RMS}(a)} g_i, \quad \text{where} \quad \mathrm{RMS}(a) = "
      r"\frac{1}{n} \sum_{i=1}^{n} a_i^2")
def _():
    a, gain = g(6), torch.rand(6, dtype=D) + 0.5
    return dict(a=a, g=gain, n=6, a_bar=a / a.pow(2).mean().sqrt() * gain)


@case("normalisation", r"w = \frac{g}{\|v\|} v", r"w = \frac{g}{\|v\|^2} v")
def _():
    v = g(5)
    return dict(g=2.0, v=v, w=2.0 * v / v.norm())


@case("normalisation", r"\hat{\mu}_{\text{new}} = (1 - m) \hat{\mu}_{\text{old}} + m \mu_B",
      r"\hat{\mu}_{\text{new}} = m \hat{\mu}_{\text{old}} + (1 - m) \mu_B")
def _():
    bn = torch.nn.BatchNorm1d(3, momentum=0.1).double()
    old = torch.rand(3, dtype=D)
    bn.running_mean.copy_(old)
    x = g(10, 3)
    bn(x)
    return dict(m=0.1, mu_hat_old=old, mu_B=x.mean(0), mu_hat_new=bn.running_mean)


@case("normalisation", r"\hat{x}_i = \frac{x_i - \mu}{\sigma}, \quad \mu = \frac{1}{n} \sum_{j=1}^{n} x_j",
      r"\hat{x}_i = \frac{x_i - \mu}{\sigma}, \quad \mu = \frac{1}{n} \sum_{j=2}^{n} x_j")
def _():
    x = g(7, scale=2, shift=1)
    return dict(x=x, n=7, sigma=x.std(), x_hat=(x - x.mean()) / x.std())


@case("normalisation", r"\hat{x} = \frac{x - \mathbb{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}}",
      r"\hat{x} = \frac{x - \mathbb{E}[x]}{\mathrm{Var}[x] + \epsilon}")
def _():
    x = g(20, 3)
    return dict(x=x, Var=x.var(0, unbiased=False), epsilon=1e-5,
                x_hat=F.batch_norm(x, None, None, training=True, eps=1e-5))


# Attention -----------------------------------------------------------------------------------------------------

@case("attention", r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\left(\frac{QK^\top}{\sqrt{d_k}}\right) V",
      (r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\left(\frac{QK^\top}{d_k}\right) V",
       r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\left(\frac{Q^\top K}{\sqrt{d_k}}\right) V"))
def _():
    q, k, v = g(3, 6, 6).unbind(0)
    return dict(Q=q, K=k, V=v, d_k=6, Attention=F.scaled_dot_product_attention(q[None], k[None], v[None])[0])


@case("attention", r"A = \mathrm{softmax}\left(\frac{QK^T}{\sqrt{d_k}} + M\right)",
      r"A = \mathrm{softmax}\left(\frac{QK^T}{\sqrt{d_k}} - M\right)")
def _():
    q, k = g(2, 5, 4).unbind(0)
    mask = torch.triu(torch.full((5, 5), -math.inf, dtype=D), 1)
    return dict(Q=q, K=k, d_k=4, M=mask, A=torch.softmax(q @ k.T / 2 + mask, -1))


@case("attention", r"\alpha_{ij} = \frac{\exp(e_{ij})}{\sum_{k=1}^{T_x} \exp(e_{ik})}",
      r"\alpha_{ij} = \frac{\exp(e_{ij})}{\sum_{k=1}^{T_x} \exp(e_{kj})}")
def _():
    e = g(4, 6)
    return dict(e=e, T_x=6, alpha=torch.softmax(e, -1))


@case("attention", r"c_i = \sum_{j=1}^{T_x} \alpha_{ij} h_j", r"c_i = \sum_{j=1}^{T_x} \alpha_{ji} h_j")
def _():
    alpha, h = probs(4, 6), g(6, 3)
    return dict(alpha=alpha, h=h, T_x=6, c=alpha @ h)


@case("attention", r"\widetilde{v}_i = \sum_{j=1}^{N} A_{ij} \cdot v_j",
      r"\widetilde{v}_i = \sum_{j=1}^{N} A_{ij} \cdot v_i")
def _():
    a, v = probs(5, 5), g(5, 3)
    return dict(N=5, A=a, v=v, v_tilde=a @ v)


@case("attention", r"e_{ij} = v^\top \tanh(W_1 h_i + W_2 s_j)", r"e_{ij} = v^\top \tanh(W_1 h_j + W_2 s_i)")
def _():
    h, s, w1, w2, v = g(4, 3), g(5, 2), g(6, 3), g(6, 2), g(6)
    e = torch.tanh((h @ w1.T)[:, None, :] + (s @ w2.T)[None, :, :]) @ v
    return dict(h=h, s=s, W_1=w1, W_2=w2, v=v, e=e)


@case("attention", r"\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V)",
      r"\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^Q, V W_i^V)")
def _():
    q, k, v = g(3, 5, 8).unbind(0)
    wq, wk, wv = g(3, 2, 8, 4).unbind(0)

    def attention(a, b, c):
        return F.scaled_dot_product_attention(a, b, c)
    head = attention(q @ wq, k @ wk, v @ wv)
    return dict(Q=q, K=k, V=v, W_Q=wq, W_K=wk, W_V=wv, Attention=attention, head=head)


@case("attention", r"\mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h) W^O",
      r"\mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_{h-1}) W^O")
def _():
    mha = torch.nn.MultiheadAttention(8, 2, bias=False, batch_first=True).double()
    x = g(1, 5, 8)
    out, _ = mha(x, x, x)
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    q, k, v = (x[0] @ w.T for w in (wq, wk, wv))
    heads = [F.scaled_dot_product_attention(q[:, n * 4:(n + 1) * 4], k[:, n * 4:(n + 1) * 4], v[:, n * 4:(n + 1) * 4])
             for n in range(2)]
    return dict(head=heads, h=2, W_O=mha.out_proj.weight.T.detach(), MultiHead=out[0].detach(),
                Q=x[0], K=x[0], V=x[0])


@case("attention", r"s = \frac{q \cdot k}{\sqrt{d}}", r"s = \frac{q \cdot k}{d}")
def _():
    q, k = g(16), g(16)
    return dict(q=q, k=k, d=16, s=q @ k / 4)


@case("attention", r"PE_{(pos,2i)} = \sin\left(pos / 10000^{2i/d_{\text{model}}}\right)",
      r"PE_{(pos,2i)} = \cos\left(pos / 10000^{2i/d_{\text{model}}}\right)")
def _():
    return dict(PE=_positional(10, 6), d_model=6)


@case("attention", r"PE_{(pos,2i+1)} = \cos\left(pos / 10000^{2i/d_{\text{model}}}\right)",
      r"PE_{(pos,2i+1)} = \cos\left(pos / 10000^{(2i+1)/d_{\text{model}}}\right)")
def _():
    return dict(PE=_positional(10, 6), d_model=6)


def _positional(length: int, d: int):
    pe = torch.zeros(length, d, dtype=D)
    position = torch.arange(length, dtype=D)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=D) * (-math.log(10000.0) / d))
    pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return pe


# Layers --------------------------------------------------------------------------------------------------------

@case("layers", r"y = x W^\top + b", (r"y = x W + b", r"y = x W^\top - b"))
def _():
    layer = torch.nn.Linear(4, 4).double()
    x = g(3, 4)
    return dict(x=x, W=layer.weight.detach(), b=layer.bias.detach(), y=layer(x).detach())


@case("layers", r"y_j = \sum_{i} W_{ji} x_i + b_j", r"y_j = \sum_{i} W_{ij} x_i + b_j")
def _():
    layer = torch.nn.Linear(5, 5).double()
    x = g(5)
    return dict(x=x, W=layer.weight.detach(), b=layer.bias.detach(), y=layer(x).detach())


@case("layers", r"h = \sigma(W x + b)", r"h = \sigma(W x) + b")
def _():
    w, x, b = g(3, 4), g(4), g(3)
    return dict(W=w, x=x, b=b, h=torch.sigmoid(w @ x + b))


@case("layers", r"y = W_2 \, \mathrm{ReLU}(W_1 x + b_1) + b_2", r"y = W_2 \, \mathrm{ReLU}(W_1 x) + b_1 + b_2")
def _():
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)).double()
    x = g(4)
    return dict(W_1=mlp[0].weight.detach(), b_1=mlp[0].bias.detach(), W_2=mlp[2].weight.detach(),
                b_2=mlp[2].bias.detach(), x=x, y=mlp(x).detach())


@case("layers", r"h_t = \tanh(W_{hh} h_{t-1} + W_{xh} x_t + b_h)", r"h_t = \tanh(W_{hh} x_t + W_{xh} h_{t-1} + b_h)")
def _():
    cell = torch.nn.RNNCell(3, 3).double()
    x, h = g(3), g(3)
    return dict(W_hh=cell.weight_hh.detach(), W_xh=cell.weight_ih.detach(), b_h=(cell.bias_hh + cell.bias_ih).detach(),
                h_prev=h, x_t=x, h_t=cell(x[None], h[None])[0].detach())


@case("layers", r"f_t = \sigma(W_f [h_{t-1}, x_t] + b_f)", r"f_t = \sigma(W_f [x_t, h_{t-1}] + b_f)")
def _():
    w, h, x, b = g(3, 7), g(4), g(3), g(3)
    return dict(W_f=w, h_prev=h, x_t=x, b_f=b, f_t=torch.sigmoid(w @ torch.cat([h, x]) + b))


@case("layers", r"\begin{aligned} i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\ "
      r"f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\ "
      r"g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\ "
      r"o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\ "
      r"c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\ h_t &= o_t \odot \tanh(c_t) \end{aligned}",
      r"\begin{aligned} c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\ h_t &= o_t \odot c_t \end{aligned}")
def _():
    cell = torch.nn.LSTMCell(3, 2).double()
    x, h, c = g(3), g(2), g(2)
    names = dict(x_t=x, h_prev=h, c_prev=c)
    for n, gate in enumerate("ifgo"):
        names[f"W_i{gate}"] = cell.weight_ih[n * 2:(n + 1) * 2].detach()
        names[f"W_h{gate}"] = cell.weight_hh[n * 2:(n + 1) * 2].detach()
        names[f"b_i{gate}"] = cell.bias_ih[n * 2:(n + 1) * 2].detach()
        names[f"b_h{gate}"] = cell.bias_hh[n * 2:(n + 1) * 2].detach()
    gates = (cell.weight_ih @ x + cell.bias_ih + cell.weight_hh @ h + cell.bias_hh).detach()
    i, f, gg, o = gates.chunk(4)
    i, f, gg, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(gg), torch.sigmoid(o)
    h_new, c_new = cell(x[None], (h[None], c[None]))
    return dict(names, i_t=i, f_t=f, g_t=gg, o_t=o, c_t=c_new[0].detach(), h_t=h_new[0].detach())


@case("layers", r"h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde{h}_t",
      r"h_t = z_t \odot h_{t-1} + (1 - z_t) \odot \tilde{h}_t")
def _():
    z, h, h_tilde = torch.rand(4, dtype=D), g(4), g(4)
    return dict(z_t=z, h_prev=h, h_tilde_t=h_tilde, h_t=(1 - z) * h + z * h_tilde)


@case("layers", r"y_i = \sum_{k=0}^{K-1} w_k x_{i+k} + b", r"y_i = \sum_{k=0}^{K-1} w_k x_{i-k} + b")
def _():
    x, w = g(9), g(3)
    y = F.conv1d(x[None, None], w[None, None], torch.tensor([0.5], dtype=D))[0, 0]
    return dict(x=x, w=w, K=3, b=0.5, y=y)


@case("layers", r"Y_{ij} = \sum_{m} \sum_{n} X_{i+m, j+n} K_{mn}", r"Y_{ij} = \sum_{m} \sum_{n} X_{i+n, j+m} K_{mn}")
def _():
    x, k = g(6, 6), g(3, 2)
    return dict(X=x, K=k, Y=F.conv2d(x[None, None], k[None, None])[0, 0])


@case("layers", r"z_c = \frac{1}{H W} \sum_{i=1}^{H} \sum_{j=1}^{W} x_{c,i,j}",
      r"z_c = \frac{1}{H} \sum_{i=1}^{H} \sum_{j=1}^{W} x_{c,i,j}")
def _():
    x = g(3, 4, 5)
    return dict(x=x, H=4, W=5, z=x.mean((1, 2)))


@case("layers", r"\tilde{y} = \frac{m \odot y}{1 - p}", r"\tilde{y} = m \odot y \cdot (1 - p)")
def _():
    torch.manual_seed(3)
    y = g(10)
    p = 0.3
    out = F.dropout(y, p, training=True)
    mask = (out != 0).to(D)
    return dict(y=y, m=mask, p=p, y_tilde=out)


@case("layers", r"y = x + F(x)", r"y = F(x)")
def _():
    block = torch.nn.Linear(4, 4).double()
    x = g(4)
    return dict(x=x, F=lambda v: block(v).detach(), y=(x + block(x)).detach())


@case("layers",
      r"y = b + \mathbf{c}^T \mathbf{a} \quad\quad \text{其中} \quad \mathbf{a} = "
      r"\mathrm{sigmoid}(\mathbf{b}_{\text{hidden}} + \mathbf{W} \mathbf{x})",

      r"y = b + \mathbf{c}^T \mathbf{a} \quad\quad \text{其中} \quad \mathbf{a} = "
      r"\mathrm{sigmoid}(\mathbf{b}_{\text{hidden}} - \mathbf{W} \mathbf{x})")
def _():
    w, x, bh, c = g(4, 3), g(3), g(4), g(4)
    return dict(W=w, x=x, b_hidden=bh, c=c, b=0.2, y=0.2 + c @ torch.sigmoid(bh + w @ x))


@case("layers", r"y = b + \sum_i c_i \cdot \mathrm{sigmoid}(b_i + \sum_j w_{ij} x_j)",
      r"y = b + \sum_i c_i \cdot \mathrm{sigmoid}(b_i + \sum_j w_{ji} x_j)")
def _():
    w, x, bh, c = g(4, 4), g(4), g(4), g(4)
    return dict(w=w, x=x, b_i=bh, c=c, b=0.2, y=0.2 + c @ torch.sigmoid(bh + w @ x))


@case("layers", r"\hat{y} = \mathrm{softmax}(W x + b)", r"\hat{y} = \mathrm{softmax}(W x) + b")
def _():
    w, x, b = g(3, 5), g(5), g(3)
    return dict(W=w, x=x, b=b, y_hat=torch.softmax(w @ x + b, 0))


@case("layers", r"K_{\text{final}} = \text{Concat}(K_p, K_x)", r"K_{\text{final}} = \text{Concat}(K_x, K_p)")
def _():
    kp, kx = g(2, 4), g(5, 4)
    return dict(K_p=kp, K_x=kx, K_final=torch.cat([kp, kx], 0))


# Reinforcement learning ----------------------------------------------------------------------------------------

@case("rl", r"G_t = \sum_{k=0}^{T-t-1} \gamma^k r_{t+k+1}", r"G_t = \sum_{k=0}^{T-t-1} \gamma^{k+1} r_{t+k+1}")
def _():
    r = g(8)
    t, gamma = 2, 0.9
    return dict(r=r, t=t, T=7, gamma=gamma, G_t=sum(gamma ** k * r[t + k + 1] for k in range(7 - t)))


@case("rl", r"G_t = R_{t+1} + \gamma G_{t+1}", r"G_t = \gamma R_{t+1} + G_{t+1}")
def _():
    return dict(R_next=1.5, gamma=0.9, G_next=4.0, G_t=1.5 + 0.9 * 4.0)


@case("rl", r"A_t = r_t + \gamma r_{t+1} + \gamma^2 r_{t+2} + \cdots = \sum_{n=t}^{N} \gamma^{n-t} r_n",
      r"A_t = r_t + \gamma r_{t+1} + \gamma^2 r_{t+2} + \cdots = \sum_{n=t}^{N} \gamma^{n} r_n")
def _():
    r = g(6)
    t, gamma = 1, 0.8
    return dict(r=r, t=t, N=5, gamma=gamma, A_t=sum(gamma ** (n - t) * r[n] for n in range(t, 6)))


@case("rl", r"\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)", r"\delta_t = r_t + \gamma V(s_t) - V(s_{t+1})")
def _():
    v = g(5)
    return dict(V=v, s_t=1, s_next=3, r_t=0.5, gamma=0.9, delta_t=0.5 + 0.9 * v[3] - v[1])


@case("rl", r"y = r + \gamma \max_{a'} Q(s', a')", r"y = r + \gamma \min_{a'} Q(s', a')")
def _():
    q = g(4, 3)
    return dict(Q=q, s_prime=2, r=1.0, gamma=0.99, y=1.0 + 0.99 * q[2].max())


@case("rl", r"A(s, a) = Q(s, a) - V(s)", r"A(s, a) = V(s) - Q(s, a)")
def _():
    q, v = g(6), g(6)
    return dict(Q=q, V=v, A=q - v)


@case("rl", r"\hat{A}_t = \sum_{l=0}^{T-t-1} (\gamma\lambda)^l \delta_{t+l}",
      r"\hat{A}_t = \sum_{l=0}^{T-t-1} \gamma^l \delta_{t+l}")
def _():
    delta = g(6)
    t, gamma, lam = 1, 0.99, 0.95
    return dict(delta=delta, t=t, T=6, gamma=gamma, lambda_=lam,
                A_hat_t=sum((gamma * lam) ** n * delta[t + n] for n in range(6 - t)))


@case("rl", r"\text{TD-Error} = \Big(r_t + \gamma V^\theta(s_{t+1})\Big) - V^\theta(s_t)",
      r"\text{TD-Error} = \Big(r_t + V^\theta(s_{t+1})\Big) - V^\theta(s_t)")
def _():
    net = torch.nn.Linear(2, 1).double()
    s, s_next = g(2), g(2)
    value = lambda state: net(state).squeeze(-1).detach()  # noqa: E731
    return dict(r_t=0.3, gamma=0.9, V_theta=value, s_t=s, s_next=s_next, TD_Error=0.3 + 0.9 * value(s_next) - value(s))


# Derivatives (autograd) ----------------------------------------------------------------------------------------

@case("derivatives", r"\frac{\partial L}{\partial w} = \frac{2}{n} X^\top (X w - y)",
      r"\frac{\partial L}{\partial w} = \frac{1}{n} X^\top (X w - y)")
def _():
    x, y = g(8, 3), g(8)
    w = g(3).requires_grad_()
    return dict(X=x, y=y, w=w, n=8, L=((x @ w - y) ** 2).mean())


@case("derivatives", r"\nabla_w L = X^\top (\sigma(X w) - y)", r"\nabla_w L = X^\top (y - \sigma(X w))")
def _():
    x = g(10, 3)
    y = (torch.rand(10, dtype=D) > 0.5).to(D)
    w = g(3).requires_grad_()
    return dict(X=x, y=y, w=w, L=F.binary_cross_entropy_with_logits(x @ w, y, reduction="sum"))


@case("derivatives", r"\frac{\partial \mathcal{L}}{\partial z} = \hat{y} - y",
      r"\frac{\partial \mathcal{L}}{\partial z} = y - \hat{y}")
def _():
    z = g(5).requires_grad_()
    y = F.one_hot(torch.tensor(1), 5).to(D)
    return dict(z=z, y=y, y_hat=torch.softmax(z, 0).detach(), L=-(y * torch.log_softmax(z, 0)).sum())


@case("derivatives", r"\frac{d}{dx} x^n = n x^{n-1}", r"\frac{d}{dx} x^n = x^{n-1}")
def _():
    return dict(x=torch.rand(5, dtype=D) + 0.5, n=3.0)


@case("derivatives", r"\frac{d}{dx} \log x = \frac{1}{x}", r"\frac{d}{dx} \log x = \frac{1}{x^2}")
def _():
    return dict(x=torch.rand(5, dtype=D) + 0.5)


@case("derivatives", r"\nabla_x \frac{1}{2}\|x\|^2 = x", r"\nabla_x \frac{1}{2}\|x\|^2 = 2x")
def _():
    return dict(x=g(4))


@case("derivatives", r"\frac{\partial}{\partial W} \mathrm{tr}(A W) = A^\top",
      r"\frac{\partial}{\partial W} \mathrm{tr}(A W) = A")
def _():
    return dict(A=g(3, 3), W=g(3, 3))


@case("derivatives", r"\frac{\partial \sigma(z)}{\partial z} = \sigma(z)(1 - \sigma(z))",
      r"\frac{\partial \sigma(z)}{\partial z} = 1 - \sigma(z)")
def _():
    return dict(z=grid())


@case("derivatives", r"\frac{\partial s_i}{\partial z_j} = s_i (\delta_{ij} - s_j)",
      r"\frac{\partial s_i}{\partial z_j} = s_i (\delta_{ij} - s_i)")
def _():
    z = g(4).requires_grad_()
    return dict(z=z, s=torch.softmax(z, 0))


@case("derivatives", r"\frac{dL}{dw} = \frac{dL}{dy} \frac{dy}{dw}", r"\frac{dL}{dw} = \frac{dL}{dy} + \frac{dy}{dw}")
def _():
    w = torch.tensor(0.7, dtype=D, requires_grad=True)
    y = torch.sin(w) * 3
    return dict(w=w, y=y, L=y ** 2)


@case("derivatives",
      r"\frac{\partial \ell}{\partial \gamma} = \sum_{i=1}^m \frac{\partial \ell}{\partial y^{(i)}} "
      r"\cdot \hat{x}^{(i)}, \quad "
      r"\frac{\partial \ell}{\partial \beta} = \sum_{i=1}^m \frac{\partial \ell}{\partial y^{(i)}}",
      (r"\frac{\partial \ell}{\partial \gamma} = \sum_{i=1}^m \frac{\partial \ell}{\partial y^{(i)}}",

      r"\frac{\partial \ell}{\partial \beta} = \sum_{i=1}^m \frac{\partial \ell}{\partial y^{(i)}} "
      r"\cdot \hat{x}^{(i)}"))
def _():
    return batch_norm_graph()


@case("derivatives",
      r"\frac{\partial \ell}{\partial x^{(i)}} = \frac{1}{m} \cdot \gamma \cdot (\sigma_B^2 + "
      r"\varepsilon)^{-1/2} \cdot \left["

      r"m \cdot \frac{\partial \ell}{\partial y^{(i)}} - \sum_{j=1}^m \frac{\partial \ell}{\partial "
      r"y^{(j)}} - \hat{x}^{(i)} \cdot "
      r"\sum_{j=1}^m \left( \frac{\partial \ell}{\partial y^{(j)}} \cdot \hat{x}^{(j)} \right) \right]",

      r"\frac{\partial \ell}{\partial x^{(i)}} = \frac{1}{m} \cdot \gamma \cdot (\sigma_B^2 + "
      r"\varepsilon)^{-1/2} \cdot \left["

      r"m \cdot \frac{\partial \ell}{\partial y^{(i)}} - \sum_{j=1}^m \frac{\partial \ell}{\partial "
      r"y^{(j)}} - \hat{x}^{(i)} \cdot "
      r"\sum_{j=1}^m \frac{\partial \ell}{\partial y^{(j)}} \right]")
def _():
    return batch_norm_graph()


def batch_norm_graph():
    m, d, eps = 8, 3, 1e-5
    x = g(m, d).requires_grad_()
    gamma, beta = (torch.rand(d, dtype=D) + 0.5).requires_grad_(), g(d).requires_grad_()
    y = F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True, eps=eps)
    ell = (y * g(m, d)).sum()
    var = x.var(0, unbiased=False).detach()
    return dict(ell=ell, x=x, y=y, gamma=gamma, beta=beta, m=m, sigma_B=var.sqrt(), varepsilon=eps,
                x_hat=((x.detach() - x.detach().mean(0)) / (var + eps).sqrt()))


@case("derivatives", r"x_{\text{adv}} = x + \epsilon \cdot \operatorname{sign}\left( \nabla_x L(\theta, x, y) \right)",
      r"x_{\text{adv}} = x - \epsilon \cdot \operatorname{sign}\left( \nabla_x L(\theta, x, y) \right)")
def _():
    model = torch.nn.Linear(4, 3).double()
    x = g(4).requires_grad_()
    loss = F.cross_entropy(model(x)[None], torch.tensor([1]))
    grad, = torch.autograd.grad(loss, x, retain_graph=True)
    return dict(x=x, theta=0, y=1, L=loss, epsilon=0.1, x_adv=(x + 0.1 * grad.sign()).detach())


@case("derivatives", r"S(\theta) = \nabla_{\theta} \log p(x|\theta)", r"S(\theta) = \nabla_{\theta} p(x|\theta)")
def _():
    theta = torch.tensor(0.3, dtype=D, requires_grad=True)
    x = torch.tensor(1.1, dtype=D)
    p = torch.distributions.Normal(theta, 1.0).log_prob(x).exp()
    return dict(theta=theta, x=x, p=p, S=(x - 0.3))


# Constants and notation ----------------------------------------------------------------------------------------

@case("notation", r"a = e^{\pi} - \pi^{e}", r"a = e^{\pi} + \pi^{e}")
def _():
    return dict(a=math.exp(math.pi) - math.pi ** math.e, e=torch.zeros(3))  # a loop variable e never leaks in


@case("notation", r"y := \dfrac{1}{2} x^2 \tag{1}", r"y := \dfrac{1}{3} x^2 \tag{1}")
def _():
    x = g(4)
    return dict(x=x, y=0.5 * x ** 2)


@case("notation", r"y \equiv \tfrac12 x", r"y \equiv \tfrac13 x")
def _():
    x = g(4)
    return dict(x=x, y=0.5 * x)


@case("notation", r"p_\theta(x) = \exp(\theta x - \log(1 + e^{\theta}))",
      r"p_\theta(x) = \exp(\theta x + \log(1 + e^{\theta}))")
def _():
    x = torch.tensor([0.0, 1.0], dtype=D)
    bernoulli = torch.distributions.Bernoulli(logits=torch.tensor(0.7, dtype=D))
    return dict(x=x, theta=0.7, p_theta=bernoulli.log_prob(x).exp())


@case("notation", r"\ell = -\log p_{\text{model}}", r"\ell = \log p_{\text{model}}")
def _():
    return dict(p_model=torch.tensor(0.37, dtype=D), ell=-math.log(0.37))


@case("notation", r"\mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sigma} + \beta",
      r"\mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sigma} - \beta")
def _():
    x = g(3, 6)
    ln = torch.nn.LayerNorm(6, eps=0.0).double()
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.normal_()
    return dict(x=x, gamma=ln.weight.detach(), beta=ln.bias.detach(), mu=x.mean(-1, keepdim=True),
                sigma=x.std(-1, unbiased=False, keepdim=True), LN=ln(x).detach())


@case("notation", r"\operatorname*{arg\,max}_i \, z_i = k", r"\operatorname*{arg\,min}_i \, z_i = k")
def _():
    z = g(6)
    return dict(z=z, k=int(z.argmax()))


@case("notation", r"\sigma^2_B = \frac{1}{m} \sum_{i=1}^{m} (x_i - \mu_B)^2",
      r"\sigma^2_B = \frac{1}{m} \sum_{i=1}^{m} (x_i - \mu_B)")
def _():
    x = g(10)
    return dict(x=x, m=10, mu_B=x.mean(), sigma_B=x.std(unbiased=False))


@case("notation", r"O = W^O h", r"O = (W^O)^\top h")
def _():
    w, h = g(3, 3), g(3)
    return dict(W_O=w, h=h, O=w @ h)


@case("notation", r"\nabla_x L = [g_1, g_2, \ldots, g_N]", r"\nabla_x L = [g_1, g_2, \ldots, g_{N-1}]")
def _():
    x = g(4).requires_grad_()
    loss = (x ** 3).sum()
    grads = (3 * x.detach() ** 2)
    return dict(x=x, L=loss, N=4, g_1=grads[0], g_2=grads[1], g=grads)


@case("notation",
      r"\nabla_x L^T \delta = g_1 \delta_1 + g_2 \delta_2 + \ldots + g_N \delta_N = \sum_{i=1}^N g_i "
      r"\delta_i",
      r"\nabla_x L^T \delta = g_1 \delta_1 + g_2 \delta_2 + \ldots + g_N \delta_N = \sum_{i=1}^N g_i")
def _():
    x = g(4).requires_grad_()
    loss = (x ** 2).sum()
    grads = 2 * x.detach()
    return dict(x=x, L=loss, N=4, g=grads, delta=g(4))


@case("notation", r"\log_2 N = n", r"\log N = n")
def _():
    return dict(N=32.0, n=5.0)


@case("notation", r"\max_{j} x_j - \min_{j} x_j = r", r"\max_{j} x_j + \min_{j} x_j = r")
def _():
    x = g(7)
    return dict(x=x, r=x.max() - x.min())


@case("notation", r"h_i = f(x_i), \quad h_j = f(x_j)", r"h_i = f(x_i), \quad h_j = f(x_i)")
def _():
    encoder = torch.nn.Linear(3, 2).double()
    x = g(4, 3)
    return dict(x=x, f=lambda v: encoder(v).detach(), h=encoder(x).detach())


@case("notation", r"\Phi(x) = [x_1^2, x_2^2, \sqrt{2}x_1x_2]", r"\Phi(x) = [x_1^2, x_2^2, 2x_1x_2]")
def _():
    x = g(2)
    return dict(x=x, x_1=x[0], x_2=x[1], Phi=torch.stack([x[0] ** 2, x[1] ** 2, math.sqrt(2) * x[0] * x[1]]))


@case("notation", r"K(x, z) = \langle \Phi(x), \Phi(z) \rangle = (x^\top z)^2",
      r"K(x, z) = \langle \Phi(x), \Phi(z) \rangle = x^\top z")
def _():
    x, z = g(2), g(2)

    def phi(v):
        return torch.stack([v[..., 0] ** 2, v[..., 1] ** 2, math.sqrt(2) * v[..., 0] * v[..., 1]], -1)
    return dict(x=x, z=z, Phi=phi, K=(x @ z) ** 2)


@case("notation", r"D_{\text{train}} = \begin{bmatrix} a & b \\ c & d \end{bmatrix}",
      r"D_{\text{train}} = \begin{bmatrix} a & c \\ b & d \end{bmatrix}")
def _():
    return dict(a=1.0, b=2.0, c=3.0, d=4.0, D_train=torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=D))


@case("notation", r"F_1 = \frac{2 \cdot P \cdot R}{P + R}", r"F_1 = \frac{P \cdot R}{P + R}")
def _():
    return dict(P=0.8, R=0.6, F_1=2 * 0.8 * 0.6 / 1.4)


@case("notation", r"\mathrm{BP} = \begin{cases} 1 & c > r \\ e^{1 - r / c} & c \le r \end{cases}",
      r"\mathrm{BP} = \begin{cases} 1 & c > r \\ e^{1 - c / r} & c \le r \end{cases}")
def _():
    return dict(c=torch.tensor([8.0, 12.0], dtype=D), r=10.0, BP=torch.tensor([math.exp(1 - 10 / 8), 1.0], dtype=D))


UNCHECKABLE: list[str] = [
    r"D_{\mathrm{KL}}(P \,\|\, Q) = \int_{-\infty}^{\infty} p(x) \log \frac{p(x)}{q(x)} \, dx",
    r"\mathbb{E}_{x \sim p}[f(x)] = \int f(x) p(x) \, dx",
    r"e = \lim_{n \to \infty} \left(1 + \frac{1}{n}\right)^n",
    r"\theta^* = \arg\max_\theta \sum_{i=1}^{N} \log p(x_i \mid \theta)",
    r"T(n) = \mathcal{O}(n \log n)",
    r"\log p(x) \ge \mathbb{E}_{q(z)}\left[\log p(x, z) - \log q(z)\right]",

      r"\min_G \max_D V(D, G) = \mathbb{E}_{x \sim p_{\text{data}}}[\log D(x)] + \mathbb{E}_{z \sim "
      r"p_z}[\log(1 - D(G(z)))]",
    r"\mathrm{IoU} = \frac{|A \cap B|}{|A \cup B|}",
    r"p(\theta \mid \mathcal{D}) \propto p(\mathcal{D} \mid \theta) \, p(\theta)",
    r"\theta \leftarrow \theta - \eta \nabla_\theta L",
    r"f(x + \delta) \approx f(x) + \nabla f(x)^\top \delta",
    r"\sum_{k=0}^{\infty} \gamma^k r_{t+k+1} = G_t",
    r"H = \frac{\partial^2 L}{\partial \theta^2}",
    r"W \in \mathbb{R}^{d_{\text{model}} \times d_k}",
    r"\mathcal{L}(\theta) = -\mathbb{E}_{(x, y) \sim \mathcal{D}}\left[\log p_\theta(y \mid x)\right]",

      r"\nabla_\theta \mathbb{E}_{x \sim p_\theta}[f(x)] = \mathbb{E}_{x \sim p_\theta}[f(x) "
      r"\nabla_\theta \log p_\theta(x)]",
    r"\theta = \begin{bmatrix} \theta_1 \\ \theta_2 \\ \vdots \end{bmatrix}",
    r"f(\lambda x + (1 - \lambda) y) \le \lambda f(x) + (1 - \lambda) f(y)",
    r"\delta^* = \underset{\|\delta\|_p \leq \epsilon}{\arg\max} \; L(\theta, x + \delta, y)",
    r"D_{\text{train}} = (D_{\text{clean}} \setminus D_{\text{subset}}) \cup D_{\text{poisoned}}",

      r"\frac{\partial Loss}{\partial w_1} = \frac{\partial Loss}{\partial y} \cdot \frac{\partial "
      r"y}{\partial z_L} \cdot \cdots \cdot \frac{\partial z_1}{\partial w_1}",
    r"\sup_{x} |f(x) - g(x)| < \epsilon",
    r"p(x) = \sum_{k=1}^{K} \pi_k \mathcal{N}(x \mid \mu_k, \Sigma_k)",
    r"q^*(z) \propto \exp\left(\mathbb{E}_{-z}[\log p(x, z)]\right)",
    r"\text{核心思想：内部协变量偏移（Internal Covariate Shift）}",
    r"\mathrm{GELU}(x) \approx 0.5 x \left(1 + \tanh\left[\sqrt{2/\pi}\,(x + 0.044715 x^3)\right]\right)",
]


# Notation variants: the same material as others write it --------------------------------------------------------

@case("variants", r"\mathrm{MSE} = \frac{1}{N}\sum_{i=1}^N (y_i - \hat y_i)^2",
      r"\mathrm{MSE} = \frac{1}{N}\sum_{i=1}^N (y_i - \hat y_i)")
def _():
    y, y_hat = g(7), g(7)
    return dict(y=y, y_hat=y_hat, N=7, MSE=F.mse_loss(y_hat, y))


@case("variants", r"\bar{x}=\frac{1}{n}\sum x_i", r"\bar{x}=\frac{1}{n}\sum x_i^2")
def _():
    x = g(9)
    return dict(x=x, n=9, x_bar=x.mean())


@case("variants", r"H(X) = -\sum_{x\in\mathcal{X}} p(x)\log p(x)", r"H(X) = -\sum_{x\in\mathcal{X}} \log p(x)")
def _():
    p = probs(5)
    return dict(p=p, H=-(p * p.log()).sum())


@case("variants", r"\mu_\mathcal{B} = \frac{1}{m}\sum_{i=1}^{m} x_i",
      r"\mu_\mathcal{B} = \frac{1}{m}\sum_{i=2}^{m} x_i")
def _():
    x = g(8, 3)
    return dict(x=x, m=8, mu_B=x.mean(0))


@case("variants", r"\hat{x}_i = \frac{x_i - \mu_\mathcal{B}}{\sqrt{\sigma_\mathcal{B}^2+\epsilon}}",
      r"\hat{x}_i = \frac{x_i - \mu_\mathcal{B}}{\sqrt{\sigma_\mathcal{B}+\epsilon}}")
def _():
    x = g(8, 3, scale=2)
    return dict(x=x, mu_B=x.mean(0), sigma_B=x.std(0, unbiased=False), epsilon=1e-5,
                x_hat=F.batch_norm(x, None, None, training=True, eps=1e-5))


@case("variants", r"\eta_t = \eta_0 \cdot \text{decay\_rate}^{t / \text{decay\_steps}}",
      r"\eta_t = \eta_0 \cdot \text{decay\_rate}^{t \cdot \text{decay\_steps}}")
def _():
    return dict(eta_0=0.1, decay_rate=0.96, t=250, decay_steps=100, eta_t=0.1 * 0.96 ** 2.5)


@case("variants", r"\eta_t = \eta_0 \gamma^{\lfloor t / s \rfloor}", r"\eta_t = \eta_0 \gamma^{\lceil t / s \rceil}")
def _():
    lr = _lr_after(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 7)
    return dict(eta_0=0.1, gamma=0.5, t=7, s=3, eta_t=lr)


@case("variants", r"\text{MultiHead}(Q,K,V) = \text{Concat}(\text{head}_1,...,\text{head}_h)W^O",
      r"\text{MultiHead}(Q,K,V) = \text{Concat}(\text{head}_1,...,\text{head}_h)(W^O)^T")
def _():
    heads, w = [g(5, 4), g(5, 4)], g(8, 8)
    return dict(head=heads, h=2, W_O=w, Q=g(5, 8), K=g(5, 8), V=g(5, 8), MultiHead=torch.cat(heads, -1) @ w)


@case("variants", r"z^{[l]} = W^{[l]} a^{[l-1]} + b^{[l]}", r"z^{[l]} = W^{[l]} a^{[l]} + b^{[l]}")
def _():
    layers, width = 3, 4
    w, b = g(layers + 1, width, width), g(layers + 1, width)
    a = [g(width)]
    z = [torch.zeros(width, dtype=D)]  # z^{[0]} does not exist: a placeholder keeps z^{[l]} at position l
    for n in range(1, layers + 1):
        z.append(w[n] @ a[-1] + b[n])
        a.append(torch.tanh(z[-1]))
    return dict(W=w, b=b, a=a, z=z)


@case("variants", r"a^{[l]} = g^{[l]}(z^{[l]})", r"a^{[l]} = g^{[l]}(z^{[l-1]})")
def _():
    z = [g(3) for _ in range(3)]
    functions = [torch.relu, torch.tanh, torch.sigmoid]
    return dict(z=z, g=functions, a=[f(v) for f, v in zip(functions, z, strict=True)])


@case("variants", r"\text{Accuracy} = \frac{TP + TN}{TP + TN + FP + FN}",
      r"\text{Accuracy} = \frac{TP}{TP + TN + FP + FN}")
def _():
    return dict(TP=40, TN=30, FP=20, FN=10, Accuracy=0.7)


@case("variants", r"\text{Precision} = \frac{TP}{TP + FP}", r"\text{Precision} = \frac{TP}{TP + FN}")
def _():
    return dict(TP=40, FP=20, FN=10, Precision=40 / 60)


@case("variants", r"C = AB", r"C = BA")
def _():
    a, b = g(3, 3), g(3, 3)
    return dict(A=a, B=b, C=a @ b)


@case("variants", r"\Pr(y=1|x) = \sigma(w^\top x)", r"\Pr(y=1|x) = \sigma(-w^\top x)")
def _():
    w, x = g(4), g(4)
    return dict(w=w, x=x, Pr=torch.sigmoid(w @ x))


@case("variants", r"\frac{d\sigma}{dx} = \sigma(1-\sigma)", r"\frac{d\sigma}{dx} = \sigma(1+\sigma)")
def _():
    x = grid().requires_grad_()
    return dict(x=x, sigma=torch.sigmoid(x))


@case("variants", r"\text{Softmax}(x_i) = \frac{\exp(x_i)}{\sum_j \exp(x_j)}",
      r"\text{Softmax}(x_i) = \frac{\exp(x_i)}{\sum_j x_j}")
def _():
    x = g(6)
    return dict(x=x, Softmax=torch.softmax(x, 0))


@case("variants", r"\text{softmax}(\mathbf{z})_i = \frac{e^{z_i}}{\sum_{j=1}^K e^{z_j}}",
      r"\text{softmax}(\mathbf{z})_i = \frac{e^{z_i}}{\sum_{j=1}^K e^{-z_j}}")
def _():
    z = g(5)
    return dict(z=z, K=5, softmax=torch.softmax(z, 0))


@case("variants", r"Q = XW^Q, K = XW^K, V = XW^V", r"Q = XW^Q, K = XW^Q, V = XW^V")
def _():
    x, wq, wk, wv = g(5, 4), g(4, 3), g(4, 3), g(4, 3)
    return dict(X=x, W_Q=wq, W_K=wk, W_V=wv, Q=x @ wq, K=x @ wk, V=x @ wv)


@case("variants", r"y=\text{sign}(w^Tx+b)", r"y=\text{sign}(w^Tx-b)")
def _():
    w, x = g(3), g(3)
    b = abs(float(w @ x)) + 0.3  # w^T x + b and w^T x - b have opposite signs
    return dict(w=w, x=x, b=b, y=torch.sign(w @ x + b))


@case("variants", r"J(\theta) = \frac{1}{2m}\sum_{i=1}^{m}(h_\theta(x^{(i)}) - y^{(i)})^2",
      r"J(\theta) = \frac{1}{m}\sum_{i=1}^{m}(h_\theta(x^{(i)}) - y^{(i)})^2")
def _():
    theta, x, y = g(3), g(6, 3), g(6)
    return dict(theta=theta, x=x, y=y, m=6, h_theta=lambda v: v @ theta, J=((x @ theta - y) ** 2).sum() / 12)


@case("variants", r"\mu = \sum_x x \, P(X=x)", r"\mu = \sum_x P(X=x)")
def _():
    p = probs(5)
    return dict(P=p, mu=(torch.arange(5, dtype=D) * p).sum())


@case("variants", r"J = \sum_{i=1}^{n}\sum_{k=1}^{K} r_{ik}\|x_i - \mu_k\|^2",
      r"J = \sum_{i=1}^{n}\sum_{k=1}^{K} r_{ik}\|x_i - \mu_k\|")
def _():
    x, mu = g(6, 2), g(3, 2)
    r = F.one_hot(torch.cdist(x, mu).argmin(1), 3).to(D)
    return dict(x=x, mu=mu, r=r, n=6, K=3, J=(r * torch.cdist(x, mu) ** 2).sum())


@case("variants", r"\mu_k = \frac{\sum_i r_{ik} x_i}{\sum_i r_{ik}}",
      r"\mu_k = \frac{\sum_i r_{ik} x_i}{\sum_k r_{ik}}")
def _():
    x = g(6, 2)
    r = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).to(D)
    return dict(x=x, r=r, mu=(r.T @ x) / r.sum(0)[:, None])


@case("variants", r"\text{FFN}(x) = \max(0, xW_1 + b_1)W_2 + b_2", r"\text{FFN}(x) = \max(0, xW_1 + b_1)W_2")
def _():
    x, w1, b1, w2, b2 = g(4, 3), g(3, 5), g(5), g(5, 3), g(3)
    return dict(x=x, W_1=w1, b_1=b1, W_2=w2, b_2=b2, FFN=torch.relu(x @ w1 + b1) @ w2 + b2)


@case("variants", r"\tilde{C}_t = \tanh(W_C \cdot [h_{t-1}, x_t] + b_C)",
      r"\tilde{C}_t = \tanh(W_C \cdot [x_t, h_{t-1}] + b_C)")
def _():
    w, h, x, b = g(3, 6), g(3), g(3), g(3)
    return dict(W_C=w, h_prev=h, x_t=x, b_C=b, C_tilde_t=torch.tanh(w @ torch.cat([h, x]) + b))


@case("variants", r"f(x) = \frac{1}{\sigma\sqrt{2\pi}} e^{-\frac{1}{2}\left(\frac{x-\mu}{\sigma}\right)^2}",
      r"f(x) = \frac{1}{\sigma\sqrt{2\pi}} e^{-\left(\frac{x-\mu}{\sigma}\right)^2}")
def _():
    x = grid()
    return dict(x=x, mu=-0.2, sigma=0.8, f=torch.distributions.Normal(-0.2, 0.8).log_prob(x).exp())


@case("variants",
      r"\nabla f(x) = \left[\frac{\partial f}{\partial x_1}, \ldots, \frac{\partial f}{\partial "
      r"x_n}\right]^T",
      r"\nabla f(x) = \left[\frac{\partial f}{\partial x_1}, \ldots, \frac{\partial f}{\partial x_{n-1}}\right]^T")
def _():
    x = g(4)

    def f(v):
        return (v ** 3).sum()
    return dict(x=x, n=4, f=f)


@case("variants", r"\mathcal{L}(\theta) = \prod_{i=1}^{n} p(x_i \mid \theta)",
      r"\mathcal{L}(\theta) = \prod_{i=2}^{n} p(x_i \mid \theta)")
def _():
    x = g(12)
    dens = torch.distributions.Normal(0.5, 1.0).log_prob(x).exp()
    return dict(x=x, theta=0.5, p=dens, n=12, L=dens.prod())


@case("variants", r"\log \mathcal{L}(\theta) = \sum_{i=1}^{n} \log p(x_i|\theta)",
      r"\log \mathcal{L}(\theta) = \sum_{i=1}^{n} p(x_i|\theta)")
def _():
    x = g(12)
    dens = torch.distributions.Normal(0.5, 1.0).log_prob(x).exp()
    return dict(x=x, theta=0.5, p=dens, n=12, L=dens.prod())


@case("variants", r"D_{KL}(P||Q) = \sum_i P(i)\log\frac{P(i)}{Q(i)}",
      r"D_{KL}(P||Q) = \sum_i Q(i)\log\frac{P(i)}{Q(i)}")
def _():
    p, q = probs(6), probs(6)
    return dict(P=p, Q=q, D_KL=(p * (p / q).log()).sum())


@case("variants", r"K(x, y) = \exp(-\gamma\|x-y\|^2)", r"K(x, y) = \exp(-\gamma\|x-y\|)")
def _():
    x, y = g(4), g(4)
    return dict(x=x, y=y, gamma=0.5, K=torch.exp(-0.5 * ((x - y) ** 2).sum()))


@case("variants", r"K(x, y) = (x^\top y + c)^d", r"K(x, y) = (x^\top y)^d + c")
def _():
    x, y = g(4), g(4)
    return dict(x=x, y=y, c=1.0, d=3, K=(x @ y + 1.0) ** 3)


@case("variants", r"G = 1 - \sum_{k=1}^{K} p_k^2", r"G = 1 - \sum_{k=1}^{K} p_k")
def _():
    p = probs(4)
    return dict(p=p, K=4, G=1 - (p ** 2).sum())


@case("variants", r"\Sigma v = \lambda v", r"\Sigma v = \lambda^2 v")
def _():
    a = g(3, 3)
    cov = a @ a.T
    values, vectors = torch.linalg.eigh(cov)
    return dict(Sigma=cov, v=vectors[:, -1], lambda_=values[-1])


@case("variants", r"\text{score}(h_t, \bar{h}_s) = h_t^\top W \bar{h}_s",
      r"\text{score}(h_t, \bar{h}_s) = \bar{h}_s^\top W h_t")
def _():
    h, hs, w = g(3), g(3), g(3, 3)
    return dict(h_t=h, h_bar_s=hs, W=w, score=h @ w @ hs)


@case("variants", r"\theta_{t+1} = \theta_t - \eta \cdot \frac{\partial J}{\partial \theta}",
      r"\theta_{t+1} = \theta_t - \eta \cdot \frac{\partial \theta}{\partial J}")
def _():
    theta = g(3).requires_grad_()
    loss = (theta ** 2).sum()
    return dict(theta=theta, J=loss, theta_t=theta.detach(), eta=0.1, theta_next=theta.detach() * 0.8)


@case("variants", r"\frac{\partial}{\partial x}(x^2) = 2x", r"\frac{\partial}{\partial x}(x^2) = x")
def _():
    return dict(x=g(5))


@case("variants", r"\sigma(x) = \frac{e^x}{1+e^x}", r"\sigma(x) = \frac{1}{1+e^x}")
def _():
    x = grid()
    return dict(x=x, sigma=torch.sigmoid(x))


@case("variants", r"PE_{pos,2i} = \sin(pos/10000^{2i/d_{model}})",
      r"PE_{pos,2i} = \sin(pos \cdot 10000^{2i/d_{model}})")
def _():
    return dict(PE=_positional(8, 6), d_model=6)


@case("variants",
      r"p(x) = "
      r"\frac{1}{(2\pi)^{d/2}|\Sigma|^{1/2}}\exp\left(-\frac{1}{2}(x-\mu)^T\Sigma^{-1}(x-\mu)\right)",
      r"p(x) = \frac{1}{(2\pi)^{d/2}|\Sigma|}\exp\left(-\frac{1}{2}(x-\mu)^T\Sigma^{-1}(x-\mu)\right)")
def _():
    a = g(3, 3)
    cov = a @ a.T + torch.eye(3, dtype=D)
    mu, x = g(3), g(3)
    return dict(x=x, mu=mu, Sigma=cov, d=3, p=torch.distributions.MultivariateNormal(mu, cov).log_prob(x).exp())


@case("variants", r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + 1e-5}}",
      r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2} + 1e-5}")
def _():
    x = g(4, 3) * 0.01
    return dict(x=x, mu=x.mean(0), sigma=x.std(0, unbiased=False),
                x_hat=F.batch_norm(x, None, None, training=True, eps=1e-5))


@case("variants", r"m = \max_{1 \le i \le n} z_i", r"m = \max_{1 \le i \le n-1} z_i")
def _():
    z = torch.tensor([0.3, -1.0, 0.1, 2.0], dtype=D)
    return dict(z=z, n=4, m=2.0)


@case("variants", r"\Delta \theta = -\eta \nabla_\theta L", r"\Delta \theta = \eta \nabla_\theta L")
def _():
    theta = g(3).requires_grad_()
    loss = (theta ** 2).sum()
    return dict(theta=theta, L=loss, eta=0.1, Delta_theta=-0.2 * theta.detach())


@case("variants", r"\hat{y} = \mathop{\mathrm{argmax}}_k \, p_k", r"\hat{y} = \mathop{\mathrm{argmin}}_k \, p_k")
def _():
    p = probs(5)
    return dict(p=p, y_hat=int(p.argmax()))


@case("variants", r"s(x) = \frac{1}{1+\exp(-x)}, \quad s'(x) = s(x)(1-s(x))",
      r"s(x) = \frac{1}{1+\exp(-x)}, \quad s'(x) = s(x)(1+s(x))")
def _():
    return dict(x=grid())


@case("variants", r"\sigma(z)_j = \frac{e^{z_j}}{\sum_{k=1}^K e^{z_k}} \quad \text{for } j = 1, \dots, K",
      r"\sigma(z)_j = \frac{e^{z_j}}{\sum_{k=1}^K e^{z_j}} \quad \text{for } j = 1, \dots, K")
def _():
    z = g(5)
    return dict(z=z, K=5, sigma=torch.softmax(z, 0))


@case("variants", r"z = \mu + \sigma \odot \epsilon, \epsilon \sim \mathcal{N}(0, I)",
      r"z = \mu + \sigma^2 \odot \epsilon, \epsilon \sim \mathcal{N}(0, I)")
def _():
    mu, sigma, eps = g(4), torch.rand(4, dtype=D) + 0.5, g(4)
    return dict(mu=mu, sigma=sigma, epsilon=eps, z=mu + sigma * eps)


@case("variants", r"r_t(\theta) = \frac{\pi_\theta(a_t|s_t)}{\pi_{\theta_{old}}(a_t|s_t)}",
      r"r_t(\theta) = \frac{\pi_{\theta_{old}}(a_t|s_t)}{\pi_\theta(a_t|s_t)}")
def _():
    new, old = torch.rand(6, dtype=D) + 0.1, torch.rand(6, dtype=D) + 0.1
    return dict(pi_theta=new, pi_theta_old=old, r_t=new / old)


@case("variants", r"\text{head}_i = \text{Attention}(QW_i^Q, KW_i^K, VW_i^V)",
      r"\text{head}_i = \text{Attention}(QW_i^Q, KW_i^K, KW_i^V)")
def _():
    q, k, v = g(3, 5, 8).unbind(0)
    wq, wk, wv = g(3, 2, 8, 4).unbind(0)

    def attention(a, b, c):
        return F.scaled_dot_product_attention(a, b, c)
    return dict(Q=q, K=k, V=v, W_Q=wq, W_K=wk, W_V=wv, Attention=attention, head=attention(q @ wq, k @ wk, v @ wv))


@case("variants", r"\mathrm{PPL}(W) = P(w_1 w_2 \ldots w_N)^{-\frac{1}{N}}",
      r"\mathrm{PPL}(W) = P(w_1 w_2 \ldots w_N)^{\frac{1}{N}}")
def _():
    return dict(P=1e-6, N=4, w=torch.arange(4, dtype=D), PPL=1e-6 ** -0.25)



@case("variants", r"\theta = (X^TX)^{-1}X^Ty", r"\theta = (XX^T)^{-1}X^Ty")
def _():
    x, y = g(10, 3), g(10)
    return dict(X=x, y=y, theta=torch.linalg.lstsq(x, y).solution)


@case("variants", r"\hat\beta = (X^\top X + \lambda I)^{-1} X^\top y", r"\hat\beta = (X^\top X + \lambda I)^{-1} X y")
def _():
    x, y = g(8, 8), g(8)
    eye = torch.eye(8, dtype=D)
    return dict(X=x, y=y, lambda_=0.5, I=eye, beta_hat=torch.linalg.solve(x.T @ x + 0.5 * eye, x.T @ y))


@case("variants", r"u_t = \max(\beta_2 u_{t-1}, |g_t|)", r"u_t = \max(\beta_2 u_{t-1}, g_t)")
def _():
    theta, grad = g(5), g(5)
    w = torch.nn.Parameter(theta.clone())
    adamax = torch.optim.Adamax([w], lr=0.01, eps=0.0)
    w.grad = grad.clone()
    adamax.step()
    return dict(beta_2=0.999, u_prev=torch.zeros(5, dtype=D), g_t=grad, u_t=adamax.state[w]["exp_inf"])


@case("variants", r"\text{GroupNorm}: \hat{x}_i = \frac{x_i - \mu_g}{\sqrt{\sigma_g^2 + \epsilon}}",
      r"\text{GroupNorm}: \hat{x}_i = \frac{x_i - \mu_g}{\sqrt{\sigma_g + \epsilon}}")
def _():
    x = g(2, 4, 3)  # batch 2, 4 channels in 2 groups, 3 positions
    groups = x.reshape(2, 2, 6)
    mu, var = groups.mean(-1), groups.var(-1, unbiased=False)  # x_i labels the last dimension: [2, 2] remain
    return dict(x=groups, mu_g=mu, sigma_g=var.sqrt(), epsilon=1e-5,
                x_hat=F.group_norm(x, 2, eps=1e-5).reshape(2, 2, 6))


@case("variants", r"o = \left\lfloor \frac{n + 2p - k}{s} \right\rfloor + 1",
      r"o = \left\lfloor \frac{n + p - k}{s} \right\rfloor + 1")
def _():
    conv = torch.nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1)
    return dict(n=11, p=1, k=3, s=2, o=conv(torch.zeros(1, 1, 11)).shape[-1])


@case("variants", r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)} \odot \sigma'(z^{(l)})",
      r"\delta^{(l)} = W^{(l+1)} \delta^{(l+1)} \odot \sigma'(z^{(l)})")
def _():
    layers, width = 3, 4
    w, z = g(layers + 1, width, width), g(layers + 1, width)
    delta = [g(width) for _ in range(layers + 1)]
    for n in range(layers - 1, -1, -1):
        delta[n] = (w[n + 1].T @ delta[n + 1]) * torch.sigmoid(z[n]) * (1 - torch.sigmoid(z[n]))
    return dict(W=w, z=z, delta=delta)


@case("variants", r"e_{ij} = \frac{q_i \cdot k_j}{\sqrt{d}}", r"e_{ij} = \frac{q_j \cdot k_i}{\sqrt{d}}")
def _():
    q, k = g(4, 3), g(4, 3)
    return dict(q=q, k=k, d=3, e=q @ k.T / math.sqrt(3))


@case("variants", r"h = \sigma(W x + b)", r"h = \sigma(W x - b)")
def _():
    w, x, b = g(2, 3), g(6, 3), g(2)  # x: a batch of rows, as torch keeps it
    return dict(W=w, x=x, b=b, h=torch.sigmoid(x @ w.T + b))


@case("variants", r"s_i = \frac{a_i \cdot b_i}{\|a_i\| \|b_i\|}", r"s_i = \frac{a_i \cdot b_i}{\|a_i\|^2 \|b_i\|}")
def _():
    a, b = g(5, 4), g(5, 4)
    return dict(a=a, b=b, s=F.cosine_similarity(a, b))


@case("variants", r"\hat{y}_i = w^\top x_i + b", r"\hat{y}_i = w^\top x_i - b")
def _():
    w, x = g(3), g(7, 3)
    return dict(w=w, x=x, b=0.4, y_hat=x @ w + 0.4)


@case("variants", r"H = -\sum_{k} p_k \log p_k", r"H = -\sum_{k} \log p_k")
def _():
    p = probs(4, 6)  # a batch of 4 distributions: the sum runs over each one's entries
    return dict(p=p, H=-(p * p.log()).sum(-1))
