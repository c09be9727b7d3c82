"""The numeric ``LHS = RHS`` formulas of the user's seed notes, each with the bindings a check block would make.

A formula here states a numeric relation a check can test on tensors: not an integral, an expectation over a
distribution, an optimisation (arg min), an asymptotic bound, set algebra, an inequality or an update with ←.
``expected`` is what a check must say: "pass", or "mismatch" where the note's own formula is wrong. Used by
tests/test_formula.py and bench/formulas.py (which also counts the ones notevault cannot evaluate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from formula_corpus import batch_norm_graph

D = torch.float64


@dataclass(frozen=True)
class SeedFormula:
    note: str  # the seed file's prefix
    line: int
    index: int  # which formula of that line
    bind: Callable[[], dict]
    expected: str = "pass"


SEED_FORMULAS: list[SeedFormula] = []
# Numeric formulas of the seeds that notevault does not evaluate yet (note, line, index): they count against it
NOT_READ = [
    ("003", 1993, 0),  # a chain rule written out with \cdots between fractions of partials
]


def seed(note: str, line: int, index: int = 0, expected: str = "pass"):
    def register(bind):
        SEED_FORMULAS.append(SeedFormula(note, line, index, bind, expected))
        return bind
    return register


def g(*shape: int):
    return torch.randn(*shape, dtype=D)


def _adam_step(lr=0.1, eps=1e-8):
    theta, grad = g(5), g(5)
    w = torch.nn.Parameter(theta.clone())
    adam = torch.optim.Adam([w], lr=lr, eps=eps)
    w.grad = grad.clone()
    adam.step()
    state = adam.state[w]
    return dict(beta_1=0.9, beta_2=0.999, m_prev=torch.zeros(5, dtype=D), v_prev=torch.zeros(5, dtype=D), g_t=grad,
                m_t=state["exp_avg"], v_t=state["exp_avg_sq"], t=1, m_hat_t=state["exp_avg"] / 0.1,
                v_hat_t=state["exp_avg_sq"] / 0.001, theta_t=theta, alpha=lr, varepsilon=eps, theta_next=w.detach())


def _batch_norm():
    graph = batch_norm_graph()
    return {**graph, "mu_B": graph["x"].detach().mean(0)}


@seed("000", 20, 0)
def _():
    x = torch.randn(32, 4) * 3 + 1
    return dict(x=x, mu=x.mean(0), sigma=x.std(0, unbiased=False), epsilon=1e-5,
                x_hat=F.batch_norm(x, None, None, training=True, eps=1e-5))


@seed("000", 20, 1)
def _():
    x = torch.randn(16, 3)
    gamma, beta = torch.rand(3) + 0.5, torch.randn(3)
    return dict(x_hat=F.batch_norm(x, None, None, training=True), gamma=gamma, beta=beta,
                y=F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True))


@seed("001", 14)
def _():
    q, k, v = torch.randn(3, 6, 8).unbind(0)
    return dict(Q=q, K=k, V=v, d_k=8, Attention=F.scaled_dot_product_attention(q[None], k[None], v[None])[0])


for _line in (253, 262, 268, 394, 406, 304):
    seed("002", _line)(_adam_step)


@seed("002", 280)
def _():
    names = _adam_step()
    return dict(names, Effective_learning_rate=0.1 / (names["v_hat_t"].sqrt() + 1e-8))


@seed("002", 292)
def _():
    grads = [g(3) for _ in range(4)]
    v = torch.zeros(3, dtype=D)
    for grad in grads:
        v = 0.99 * v + 0.01 * grad ** 2
    return dict(beta_2=0.99, t=4, g=grads, v_t=v)


@seed("002", 316)
def _():
    theta, grad = g(4), g(4)
    w = torch.nn.Parameter(theta.clone())
    sgd = torch.optim.SGD([w], lr=0.05)
    w.grad = grad.clone()
    sgd.step()
    return dict(theta_t=theta, alpha=0.05, g_t=grad, theta_next=w.detach())


@seed("002", 328)
def _():
    targets = g(4, 2)
    losses = [lambda v, c=c: ((v - c) ** 2).sum() for c in targets]
    thetas, best = g(4, 2), g(2)
    return dict(T=4, f=losses, theta=thetas, theta_star=best,
                R=sum(f(t) - f(best) for f, t in zip(losses, thetas, strict=True)))


@seed("002", 366)
def _():
    theta = g(3).requires_grad_()
    loss = (theta ** 2).sum() + theta.sum()
    return dict(theta=theta, J=loss, theta_t=theta.detach(), alpha=0.1,
                theta_next=theta.detach() - 0.1 * (2 * theta.detach() + 1))


@seed("002", 378)
def _():
    grads = g(5, 3)
    return dict(t=5, g=grads, G_t=(grads ** 2).sum(0))


@seed("002", 382)
def _():
    theta, grad = g(4), g(4)
    w = torch.nn.Parameter(theta.clone())
    adagrad = torch.optim.Adagrad([w], lr=0.05, eps=1e-10)
    w.grad = grad.clone()
    adagrad.step()
    return dict(theta_t=theta, alpha=0.05, G_t=grad ** 2, varepsilon=1e-10, g_t=grad, theta_next=w.detach())


@seed("002", 501)
def _():
    layers, width = 3, 4
    w, b = g(layers, width, width), g(layers, width)
    x = [g(width)]
    for n in range(layers):
        x.append(torch.relu(w[n] @ x[-1] + b[n]))
    return dict(x=x, W=w, b=b, f=torch.relu)


@seed("002", 513)
def _():
    x = g(8, 5)
    gamma, beta = torch.rand(5, dtype=D) + 0.5, g(5)
    return dict(x=x, m=8, sigma_B=x.var(0, unbiased=False).sqrt(), varepsilon=1e-5, gamma=gamma, beta=beta,
                y=F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True, eps=1e-5))


for _line, _index in ((535, 1), (535, 2), (543, 0), (551, 0)):
    seed("002", _line, _index)(_batch_norm)


@seed("002", 600)
def _():
    means, stds = g(5, 3), torch.rand(5, 3, dtype=D) + 0.5
    return dict(N=5, mu_B=means, sigma_B_k=stds, mu_B_global=means.mean(0), sigma_B=(stds ** 2).mean(0).sqrt())


@seed("003", 11)
def _():
    w, x, bh, c = g(4, 4), g(4), g(4), g(4)
    return dict(w=w, x=x, b_i=bh, c=c, b=0.2, y=0.2 + c @ torch.sigmoid(bh + w @ x))


@seed("003", 17)
def _():
    w, x, bh, c = g(4, 3), g(3), g(4), g(4)
    return dict(W=w, x=x, b_hidden=bh, c=c, b=0.2, y=0.2 + c @ torch.sigmoid(bh + w @ x))


@seed("003", 73)
def _():
    old, grad = g(3), g(3)
    return dict(theta_old=old, eta=0.1, g=grad, theta_new=old - 0.1 * grad)


def _attention():
    q, k, v = g(3, 5, 4).unbind(0)
    a = torch.softmax(q @ k.T / 2, -1)
    return dict(Q=q, K=k, V=v, d_k=4, A=a, V_tilde=a @ v, v=v, N=5, v_tilde=a @ v)


for _line in (1664, 1673, 1685, 1695):
    seed("003", _line)(_attention)


def _layers():
    depth = 3
    w, b = g(depth + 1), g(depth + 1)  # entry 0 is the input's place: z_i sits at position i
    z = [g(())]
    for n in range(1, depth + 1):
        z.append(torch.sigmoid(w[n] * z[-1] + b[n]))
    return dict(w=w, b=b, z=z)


seed("003", 1985)(_layers)


@seed("003", 1999, expected="mismatch")  # the note writes ∂z_{i-1}/∂z_i where ∂z_i/∂z_{i-1} is meant
def _():
    depth = 3
    w, b = g(depth + 1), g(depth + 1)
    z = [g(()).requires_grad_()]
    for n in range(1, depth + 1):
        z.append(torch.sigmoid(w[n] * z[-1] + b[n]))
    return dict(w=w, b=b, z=z)


def _chain():
    depth = 3
    x0 = torch.tensor(0.7, dtype=D)
    w = [torch.tensor(v, dtype=D, requires_grad=True) for v in (0.5, -1.2, 0.8)]
    b = [torch.tensor(v, dtype=D) for v in (0.1, 0.2, -0.3)]
    z = []
    for n in range(depth):
        z.append(torch.sigmoid(w[n] * (z[-1] if z else x0) + b[n]))
    loss = (z[-1] - 1.0) ** 2
    return dict(x_0=x0, w=w, b=b, z=z, w_1=w[0], b_1=b[0], z_1=z[0], y=z[-1], L=depth, Loss=loss)


seed("003", 2003)(_chain)
seed("003", 2009)(_chain)


@seed("003", 2055)
def _():
    block = torch.nn.Linear(3, 3).double()
    x = g(3)
    return dict(x=x, F=lambda v: block(v).detach(), H=lambda v: v + block(v).detach())


def _projections():
    w_q, w_k, w_v, i = g(4, 3), g(4, 3), g(4, 3), g(3, 5)  # I: the tokens as columns
    q, k, v = w_q @ i, w_k @ i, w_v @ i
    a = k.T @ q
    return dict(W_q=w_q, W_k=w_k, W_v=w_v, I=i, Q=q, K=k, V=v, A=a, A_prime=torch.softmax(a / 2, 0),
                O=v @ torch.softmax(a / 2, 0))


for _line in (2099, 2102, 2105, 2115, 2144):
    seed("003", _line)(_projections)


@seed("003", 2127)
def _():
    q, k, v = g(4, 5), g(4, 5), g(5, 3)
    return dict(Q=q, K=k, V=v, d_k=4, Attention=torch.softmax(k.T @ q / 2, -1) @ v)


def _standardise():
    x = g(6, 3)
    return dict(x=x, R=6, m=x.mean(0), Var=x.var(0, unbiased=False), sigma=x.std(0, unbiased=False))


for _line in (2357, 2364, 2370):
    seed("003", _line)(_standardise)


@seed("003", 2511)
def _():
    x = g(2)
    return dict(x=x, x_1=x[0], x_2=x[1], Phi=torch.stack([x[0] ** 2, x[1] ** 2, math.sqrt(2) * x[0] * x[1]]))


@seed("003", 2552)
def _():
    x, z = g(2), g(2)

    def phi(v):
        return torch.stack([v[..., 0] ** 2, v[..., 1] ** 2, math.sqrt(2) * v[..., 0] * v[..., 1]], -1)
    return dict(x=x, z=z, Phi=phi, K=(x @ z) ** 2)


@seed("003", 2582)
def _():
    encoder = torch.nn.Linear(3, 2).double()
    x = g(4, 3)
    return dict(x=x, f=lambda v: encoder(v).detach(), h=encoder(x).detach())


@seed("003", 2603)
def _():
    n, tau = 3, 0.5
    z = g(2 * n, 4)
    sim = F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1)
    others = torch.logsumexp((sim / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), -math.inf), -1)
    return dict(z=z, N=n, tau=tau, L=others[:, None] - sim / tau, sim=lambda a, b: F.cosine_similarity(a, b, dim=-1))


@seed("003", 2941)
def _():
    adapter, norm = torch.nn.Linear(4, 4).double(), torch.nn.LayerNorm(4).double()
    h = g(4)
    return dict(h_original=h, Adapter=lambda v: adapter(v).detach(), LayerNorm=lambda v: norm(v).detach(),
                h_new=(h + adapter(norm(h))).detach())


@seed("003", 2952)
def _():
    h = g(4)
    return dict(h_original=h, h_new=h.clone())


def _prefix():
    kp, kx, vp, vx = g(2, 4), g(5, 4), g(2, 4), g(5, 4)
    return dict(K_p=kp, K_x=kx, V_p=vp, V_x=vx, K_final=torch.cat([kp, kx]), V_final=torch.cat([vp, vx]))


seed("003", 3009)(_prefix)
seed("003", 3012)(_prefix)


@seed("003", 3481)
def _():
    model = torch.nn.Linear(4, 3).double()
    x = g(4).requires_grad_()
    loss = F.cross_entropy(model(x)[None], torch.tensor([1]))
    grad, = torch.autograd.grad(loss, x, retain_graph=True)
    return dict(x=x, theta=0, y=1, L=loss, epsilon=0.1, x_adv=(x + 0.1 * grad.sign()).detach())


def _input_gradient():
    x = g(4).requires_grad_()
    loss = (x ** 3).sum()
    grads = 3 * x.detach() ** 2
    return dict(x=x, L=loss, N=4, g=grads, delta=g(4))


seed("003", 3513)(_input_gradient)
seed("003", 3519)(_input_gradient)


@seed("003", 3547)
def _():
    robust, fragile = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    x = g(3)
    return dict(x=x, f_robust=lambda v: robust(v).detach(), f_non_robust=lambda v: fragile(v).detach(),
                f=lambda v: (robust(v) + fragile(v)).detach())


def _maximum_likelihood():
    counts = torch.tensor([3.0, 5.0, 2.0, 6.0], dtype=D)
    p = counts / counts.sum()
    p_o = p.clone()
    return dict(N=counts, P=p, P_o=p_o, L=(p ** counts).prod(), lambda_=1.0, W=-(p_o * p.log()).sum())


seed("003", 3985)(_maximum_likelihood)
seed("003", 4008)(_maximum_likelihood)
seed("003", 4016)(_maximum_likelihood)
seed("003", 4020)(_maximum_likelihood)
seed("003", 4012, expected="mismatch")(_maximum_likelihood)  # N is both the counts N(x) and their total N


@seed("003", 4098)
def _():
    r = g(6)
    t, gamma = 1, 0.8
    value = sum(gamma ** (n - t) * r[n] for n in range(t, 6))
    return dict(r=r, t=t, N=5, gamma=gamma, A_t=value, G_prime_t=value)


@seed("003", 4291)
def _():
    net = torch.nn.Linear(2, 1).double()
    s, s_next = g(2), g(2)

    def value(state):
        return net(state).squeeze(-1).detach()
    return dict(r_t=0.3, gamma=0.9, V_theta=value, s_t=s, s_next=s_next, TD_Error=0.3 + 0.9 * value(s_next) - value(s))


def _score():
    theta = torch.tensor(0.3, dtype=D, requires_grad=True)
    x = torch.tensor(1.1, dtype=D)
    p = torch.distributions.Normal(theta, 1.0).log_prob(x).exp()
    return dict(theta=theta, x=x, p=p, S=x - 0.3)


seed("003", 4772)(_score)
seed("003", 4778)(_score)
