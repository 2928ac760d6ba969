"""The lecture's update rules and losses as maths, drawn offline by matplotlib's mathtext.

Each `Equation` holds its mathtext source and a plain-text reading (what a screen reader
and a search find); `svg` draws it as inline SVG: glyphs as paths, no fonts, no network,
no MathJax. The forms are those of ../shared/REFERENCE.md and of gradfit's optimisers
(the slides' momentum is an average of gradients, Nesterov takes its gradient at the
look-ahead point φ − α m, Adam's ε sits inside the root).
"""

from __future__ import annotations

import functools
import html
import io
import re
from dataclasses import dataclass

from .. import report as rp


@dataclass(frozen=True)
class Equation:
    """One displayed formula: mathtext source, and the same in plain text."""

    tex: str
    text: str


#: Every formula the lecture shows, by name.
EQUATIONS: dict[str, Equation] = {
    "least_squares": Equation(r"L[\phi] = \sum_{i=1}^{I}\, \left(f[x_i, \phi] - y_i\right)^2",
                              "L[φ] = Σ_i (f[x_i, φ] − y_i)²"),
    "line": Equation(r"f[x, \phi] = \phi_0 + \phi_1 x", "f[x, φ] = φ0 + φ1 x"),
    "gd": Equation(r"\phi \leftarrow \phi - \alpha\, \dfrac{\partial L}{\partial \phi}", "φ ← φ − α ∂L/∂φ"),
    "gabor": Equation(r"f[x, \phi] = \sin(z)\, \exp\left(-\dfrac{z^2}{s}\right),\quad z = \phi_0 + 0.06\, \phi_1 x",
                      "f[x, φ] = sin(z) exp(−z²/s), z = φ0 + 0.06 φ1 x"),
    "sgd": Equation(r"\phi \leftarrow \phi - \alpha \sum_{i \in \mathcal{B}_t} \dfrac{\partial \ell_i}{\partial \phi}",
                    "φ ← φ − α Σ_{i in B_t} ∂ℓ_i/∂φ (a mini-batch B_t, drawn without replacement)"),
    "step_decay": Equation(r"\alpha_t = \alpha_0\, d^{\lfloor t / M \rfloor}",
                           "α_t = α_0 d^floor(t/M): α times d every M steps"),
    "momentum": Equation(r"m \leftarrow \beta\, m + (1 - \beta)\, g,\qquad \phi \leftarrow \phi - \alpha\, m",
                         "m ← β m + (1 − β) g, φ ← φ − α m"),
    "nesterov": Equation(r"m \leftarrow \beta\, m + (1 - \beta)\, \nabla L[\phi - \alpha\, m],\qquad "
                         r"\phi \leftarrow \phi - \alpha\, m",
                         "m ← β m + (1 − β) ∇L[φ − α m], φ ← φ − α m (gradient at the look-ahead point)"),
    "normalized": Equation(r"m \leftarrow g,\quad v \leftarrow g^2,\qquad "
                           r"\phi \leftarrow \phi - \alpha\, \dfrac{m}{\sqrt{v} + \epsilon}",
                           "m ← g, v ← g², φ ← φ − α m / (√v + ε)"),
    "adam_moments": Equation(r"m \leftarrow \beta\, m + (1 - \beta)\, g,\qquad "
                             r"v \leftarrow \gamma\, v + (1 - \gamma)\, g^2",
                             "m ← β m + (1 − β) g, v ← γ v + (1 − γ) g²"),
    "adam_step": Equation(r"\tilde{m} = \dfrac{m}{1 - \beta^{t+1}},\quad "
                          r"\tilde{v} = \dfrac{v}{1 - \gamma^{t+1}},\qquad "
                          r"\phi \leftarrow \phi - \alpha\, \dfrac{\tilde{m}}{\sqrt{\tilde{v} + \epsilon}}",
                          "m̃ = m / (1 − β^(t+1)), ṽ = v / (1 − γ^(t+1)), φ ← φ − α m̃ / √(ṽ + ε)"),
    "poisson": Equation(r"L[\phi] = \sum_{i=1}^{I} \left(\lambda_i - y_i \log \lambda_i\right) + \sum_{i=1}^{I} "
                        r"\log y_i!,\quad \lambda_i = \exp f[x_i, \phi]",
                        "L[φ] = Σ_i (λ_i − y_i log λ_i) + Σ_i log y_i!, λ_i = exp f[x_i, φ]"),
}

_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID = re.compile(r'id="([^"]+)"')


@functools.cache
def _drawn(name: str, size: float) -> tuple[str, tuple[str, ...]]:
    """Equation ``name`` drawn by mathtext: the ``<svg>`` element, and its ids (longest first)."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    mathtext.math_to_image(f"${EQUATIONS[name].tex}$", buffer, prop=FontProperties(size=size), format="svg")
    text = _METADATA.sub("", buffer.getvalue().decode("utf-8"))
    text = text[text.index("<svg"):].replace('style="fill: #ffffff"', 'style="fill: none"')  # see-through
    return text, tuple(sorted(set(_ID.findall(text)), key=len, reverse=True))


def svg(name: str, size: float = 17.0, *, prefix: str = "") -> str:
    """Equation ``name`` as one inline ``<svg>`` element (no prolog), its ids starting ``eq-<prefix><name>-``.

    Drawn once per (name, size); give each copy on a page its own ``prefix``, so ids stay
    unique. The date matplotlib stamps in its metadata is dropped: the same equation
    draws the same bytes.
    """
    text, ids = _drawn(name, size)
    start = f"eq-{prefix}{name}-"
    for old in ids:
        text = text.replace(f'id="{old}"', f'id="{start}{old}"').replace(f'"#{old}"', f'"#{start}{old}"')
    label = html.escape(EQUATIONS[name].text, quote=True)
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def formula(name: str, prefix: str = "") -> rp.Formula:
    """Equation ``name`` as the report shows it (``prefix`` as in `svg`)."""
    return rp.Formula(EQUATIONS[name].text, svg(name, prefix=prefix))
