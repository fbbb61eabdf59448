"""Winograd's minimal filtering for the 3×3 'same' convolution (Lavin & Gray, CVPR 2016, "Fast
Algorithms for Convolutional Neural Networks"), in two tile sizes:

- F(2×2, 3×3): 4×4 input tiles (stride 2) give 2×2 outputs; 16 multiplies per channel pair instead
  of 36, the transformed input 4× the input. H and W must be even.
- F(4×4, 3×3): 6×6 input tiles (stride 4) give 4×4 outputs; 36 multiplies instead of 144 (2.25 per
  output against 9), the transformed input 2.25× the input. Any H and W: the last tiles are padded
  with zeros and the output cropped.

Each is Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A per tile: the kernel is transformed once per run (`kernel_f2`,
`kernel_f4`: U = G g Gᵀ), the input and output transforms are the additions their matrices amount to
(fused by XLA), and the products become (m+2)² batched (tiles × C)·(C × O) matrix products. The input
gradient of a 3×3 'same' convolution is itself one (with `layers.backward_kernel`), so the same forms
serve the backward pass. Which form each layer uses is measured per machine (`convforms`).

F(4×4) also comes as one fused kernel compiled for this CPU ('f4f', `fused`): the same arithmetic with the
transforms and products done block by block in cache, its kernel U packed in the kernel's panels.

F(2×2) also comes with its products in bfloat16 ('f2b': `kernel_f2b`, the transformed input rounded to
bfloat16, each product accumulated in float32), for CPUs whose bfloat16 units (AMX, AVX512-BF16) XLA's
matrix products reach: a relative error of about 4e-3 against XLA's float32 convolution, so only where
asked (`--conv-forms auto-bf16`). F(4×4)'s larger transform coefficients make its bfloat16 error ~3e-2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_G2 = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
# F(4×4, 3×3) with the interpolation points 0, ±1, ±2 and ∞
_BT4 = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
        (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_AT4 = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def _kernel(g: np.ndarray, kernel) -> jnp.ndarray:
    u = jnp.einsum("ai,ijco,bj->abco", jnp.asarray(g, jnp.float32), jnp.asarray(kernel, jnp.float32),
                   jnp.asarray(g, jnp.float32), precision=lax.Precision.HIGHEST)
    return u.reshape(-1, *u.shape[2:])


def kernel_f2(kernel) -> jnp.ndarray:
    """U = G g Gᵀ of F(2×2, 3×3) for a kernel (3, 3, I, O): (16, I, O), the 4×4 positions flattened."""
    return _kernel(_G2, kernel)


def kernel_f4(kernel) -> jnp.ndarray:
    """U = G g Gᵀ of F(4×4, 3×3) for a kernel (3, 3, I, O): (36, I, O), the 6×6 positions flattened."""
    return _kernel(_G4, kernel)


def kernel_f4f(kernel) -> jnp.ndarray:
    """`kernel_f4` packed for the fused kernel (`fused.pack`): (36, O / panel, I, panel)."""
    from nst_jax.model import fused
    return fused.pack(kernel_f4(kernel))


def kernel_f4fb(kernel) -> jnp.ndarray:
    """`kernel_f4` for the fused kernel's bfloat16 products (`fused.pack_bf16`): (36, O / panel, I / 2, panel, 2)."""
    from nst_jax.model import fused
    return fused.pack_bf16(kernel_f4(kernel))


def kernel_f4fa3(kernel) -> jnp.ndarray:
    """`kernel_f4` for the fused kernel's split bfloat16 products (`fused.pack_bf16` split)."""
    from nst_jax.model import fused
    return fused.pack_bf16(kernel_f4(kernel), split=True)


def kernel_f2b(kernel) -> jnp.ndarray:
    """`kernel_f2` stored in bfloat16: F(2×2, 3×3) with bfloat16 products."""
    return kernel_f2(kernel).astype(jnp.bfloat16)


def _input_f2(x):
    """Bᵀ d B for every 4×4 tile (stride 2) of the zero-padded x (B, H, W, C), H and W even: (16, T, C)."""
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(b, h // 2 + 1, 2, w // 2 + 1, 2, c)
    d = [xp[:, :-1, 0], xp[:, :-1, 1], xp[:, 1:, 0], xp[:, 1:, 1]]       # tile rows 0..3
    r = jnp.stack([d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]])  # Bᵀ over rows
    e = [r[:, :, :, :-1, 0], r[:, :, :, :-1, 1], r[:, :, :, 1:, 0], r[:, :, :, 1:, 1]]
    v = jnp.stack([e[0] - e[2], e[1] + e[2], e[2] - e[1], e[1] - e[3]], axis=1)  # B over columns
    return v.reshape(16, -1, c)


def _output_f2(m, b, h, w):
    """Aᵀ M A for every tile, M (16, T, O) → the (B, H, W, O) output."""
    m = m.reshape(4, 4, b, h // 2, w // 2, -1)
    s = [(m[a, 0] + m[a, 1] + m[a, 2], m[a, 1] - m[a, 2] - m[a, 3]) for a in range(4)]
    y = [[s[0][q] + s[1][q] + s[2][q] for q in range(2)], [s[1][q] - s[2][q] - s[3][q] for q in range(2)]]
    return jnp.stack([jnp.stack(row, axis=3) for row in y], axis=2).reshape(b, h, w, -1)


def conv_f2(x, u, precision=None):
    """The 3×3 'same' convolution of x (B, H, W, C), H and W even, with U = kernel_f2(k) (or
    kernel_f2b(k): the products in bfloat16, accumulated and returned in float32)."""
    b, h, w, _ = x.shape
    v = _input_f2(x).astype(u.dtype)   # float32 unchanged (the same program as without the cast)
    m = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))), precision=precision, preferred_element_type=jnp.float32)
    return _output_f2(m, b, h, w)


def _combine(rows: list, matrix) -> list:
    """[Σⱼ matrix[i][j]·rows[j] for each row i of the matrix], written as the additions it is."""
    out = []
    for coefficients in matrix:
        terms = [r if c == 1 else -r if c == -1 else c * r for c, r in zip(coefficients, rows) if c]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        out.append(total)
    return out


def _input_f4(x):
    """Bᵀ d B for every 6×6 tile (stride 4) of x (B, H, W, C) zero-padded by one pixel and up to whole
    tiles: (36, T, C), and the tile counts (th, tw)."""
    b, h, w, c = x.shape
    th, tw = -(-h // 4), -(-w // 4)
    xp = jnp.pad(x, ((0, 0), (1, 4 * th + 3 - h), (1, 4 * tw + 3 - w), (0, 0)))   # 4·(t+1) rows and columns
    xr = xp.reshape(b, th + 1, 4, 4 * tw + 4, c)
    d = [xr[:, :-1, a] for a in range(4)] + [xr[:, 1:, 0], xr[:, 1:, 1]]           # tile rows 0..5
    v = []
    for r in _combine(d, _BT4):                                                     # Bᵀ over rows
        rr = r.reshape(b, th, tw + 1, 4, c)
        e = [rr[:, :, :-1, a] for a in range(4)] + [rr[:, :, 1:, 0], rr[:, :, 1:, 1]]
        v += _combine(e, _BT4)                                                      # B over columns
    return jnp.stack(v).reshape(36, b * th * tw, c), (th, tw)


def _output_f4(m, b, th, tw):
    """Aᵀ M A for every tile, M (36, T, O) → (B, 4·th, 4·tw, O)."""
    m = m.reshape(6, 6, b, th, tw, -1)
    rows = _combine([m[i] for i in range(6)], _AT4)                      # 4 × (6, B, th, tw, O)
    y = [_combine([r[j] for j in range(6)], _AT4) for r in rows]        # 4 × 4 × (B, th, tw, O)
    return jnp.stack([jnp.stack(row, axis=3) for row in y], axis=2).reshape(b, 4 * th, 4 * tw, -1)


def conv_f4(x, u, precision=None):
    """The 3×3 'same' convolution of x (B, H, W, C), any H and W, with U = kernel_f4(k)."""
    b, h, w, _ = x.shape
    v, (th, tw) = _input_f4(x)
    m = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))), precision=precision)
    return _output_f4(m, b, th, tw)[:, :h, :w]


def conv_f4f(x, u, precision=None):
    """`conv_f4` by the fused kernel (`fused.conv`), U = kernel_f4f(k); float32 whatever `precision`."""
    from nst_jax.model import fused
    return fused.conv(x, u)


def conv_f4fb(x, u, precision=None):
    """`conv_f4` by the fused kernel with bfloat16 products on AVX512-BF16 (U = kernel_f4fb(k))."""
    from nst_jax.model import fused
    return fused.conv_bf16(x, u, "avx512-bf16")


def conv_f4fa(x, u, precision=None):
    """`conv_f4` by the fused kernel with bfloat16 products on AMX tiles (U = kernel_f4fb(k))."""
    from nst_jax.model import fused
    return fused.conv_bf16(x, u, "amx")


def conv_f4fa3(x, u, precision=None):
    """`conv_f4` by the fused kernel on AMX with each number split into two bfloat16 ones (U = kernel_f4fa3(k))."""
    from nst_jax.model import fused
    return fused.conv_bf16(x, u, "amx-split")


def even(shape) -> bool:
    """Whether F(2×2) takes an input of this shape (…, H, W, C): H and W even."""
    return shape[-3] % 2 == 0 and shape[-2] % 2 == 0


def fused_fits(shape) -> bool:
    """Whether the fused kernel takes an input of this shape: its channels a multiple of its lanes."""
    from nst_jax.model import fused
    return shape[-1] % fused.library().lanes == 0


def fused_fits_bf16(shape) -> bool:
    """Whether the fused kernel's bfloat16 products take an input of this shape: channels a multiple of 32."""
    return fused_fits(shape) and shape[-1] % 32 == 0


@jax.tree_util.register_pytree_node_class
class Transformed:
    """A kernel transformed for one form (`u`), with the form's name: the name is static metadata under
    `jit`, so the convolution knows its form without guessing it from the array."""

    __slots__ = ("form", "u")

    def __init__(self, form: str, u):
        self.form, self.u = form, u

    def tree_flatten(self):
        return (self.u,), self.form

    @classmethod
    def tree_unflatten(cls, form, children):
        return cls(form, children[0])
