"""Mean-field signal propagation in deep tanh networks (Poole et al. 2016; Schoenholz et al. 2017).

A fully connected network with weights ``W ~ N(0, sigma_w2 / fan_in)``, biases
``b ~ N(0, sigma_b2)`` and activation ``phi = tanh``, in the limit of wide layers:

* the length map ``q_{l+1} = sigma_w2 E[phi(sqrt(q_l) z)^2] + sigma_b2`` has a fixed point ``q*``;
* the correlation map ``c_{l+1} = (sigma_w2 E[phi(u_1) phi(u_2)] + sigma_b2) / q*`` with
  ``u_1 = sqrt(q*) z_1``, ``u_2 = sqrt(q*) (c z_1 + sqrt(1 - c^2) z_2)`` has a fixed point ``c*``;
* ``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]`` separates the ordered (``chi_1 < 1``,
  ``c* = 1``) from the chaotic phase (``chi_1 > 1``, ``c* < 1``);
* correlations approach ``c*`` as ``exp(-l / xi_c)`` with
  ``xi_c = -1 / log(sigma_w2 E[phi'(u_1) phi'(u_2)])`` at ``c*`` (``= -1/log chi_1`` in
  the ordered phase), and Schoenholz et al. find networks trainable up to depth ``~ 6 xi_c``.

Expectations over standard normals use Gauss-Hermite quadrature (``numpy``).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

_Z, _W = hermegauss(101)
_W = _W / _W.sum()  # weights of E[f(z)], z ~ N(0, 1)


def _dphi(x):
    return 1.0 / np.cosh(x) ** 2


def q_star(sigma_w2: float, sigma_b2: float, iterations: int = 2000) -> float:
    """Fixed point of the length map (0 when ``sigma_b2 = 0`` and ``sigma_w2 <= 1``)."""
    q = 1.0
    for _ in range(iterations):
        q = sigma_w2 * np.sum(_W * np.tanh(np.sqrt(q) * _Z) ** 2) + sigma_b2
    return float(q)


def chi_1(sigma_w2: float, sigma_b2: float) -> float:
    """Slope of the correlation map at ``c = 1``: the order-to-chaos order parameter."""
    q = q_star(sigma_w2, sigma_b2)
    return float(sigma_w2 * np.sum(_W * _dphi(np.sqrt(q) * _Z) ** 2))


def _pair_expectation(f, g, q: float, c: float) -> float:
    z1, z2 = np.meshgrid(_Z, _Z, indexing="ij")
    weights = np.outer(_W, _W)
    u1 = np.sqrt(q) * z1
    u2 = np.sqrt(q) * (c * z1 + np.sqrt(max(1 - c * c, 0.0)) * z2)
    return float(np.sum(weights * f(u1) * g(u2)))


def c_star(sigma_w2: float, sigma_b2: float, iterations: int = 500) -> float:
    """Fixed point of the correlation map, from ``c = 0.5``; 1 in the ordered phase."""
    q = q_star(sigma_w2, sigma_b2)
    if q < 1e-12 or chi_1(sigma_w2, sigma_b2) <= 1:
        return 1.0
    c = 0.5
    for _ in range(iterations):
        c = (sigma_w2 * _pair_expectation(np.tanh, np.tanh, q, c) + sigma_b2) / q
    return float(min(c, 1.0))


def xi_c(sigma_w2: float, sigma_b2: float) -> float:
    """Depth scale of correlations; ``inf`` at the critical point."""
    q, c = q_star(sigma_w2, sigma_b2), c_star(sigma_w2, sigma_b2)
    chi_c = chi_1(sigma_w2, sigma_b2) if c >= 1.0 else sigma_w2 * _pair_expectation(_dphi, _dphi, q, c)
    return float("inf") if chi_c >= 1.0 else float(-1.0 / np.log(chi_c))
