"""The numba kernel layer: serial, ``nogil`` loops over one ``[start, stop)`` work unit.

One design for every kernel, chosen to keep the cold compile small:

* **3D only.** A 2D problem is lifted to a 1-voxel-thick 3D one
  (:mod:`parareg.kernels.lift`), so each operation has one kernel and
  compiles once for 2D and 3D alike. There is no dispatch table: drivers
  call the kernel of their operation.
* **One signature per kernel.** Drivers pass C-contiguous float32 images and
  fields, float64 matrices (3 x 3 / 4 x 4) and accumulators, and runtime
  flags (``nearest``, ``use_mask``, ``with_gradient``, ...) instead of
  separate kernels. (Nearest-neighbour resampling of a label image adds one
  specialisation per label dtype.)
* **Shared helpers** live in modules named for what they are
  (:mod:`~parareg.kernels.interp`, :mod:`~parareg.kernels.stencil`,
  :mod:`~parareg.kernels.samples`) and use the decorators of
  :mod:`parareg.kernels._jit`. Small ones are ``helper``: compiled once per
  process for every kernel (no Python/C wrapper, no cache entry of their
  own) and inlined by LLVM. Large ones in hot loops (``vector_at``,
  ``linear_value_gradient_3d``, ``world_gradient_at``, ``component_diffs``,
  ``composed_at``, ``add_outer_3d``, the demons step, the box sums) are
  ``inline_helper``: numba IR inlining, paid at each call site, because LLVM
  does not inline them once compiled on their own (kernels measured 1.2-3x
  slower). Helpers are called with typed values, never literal constants
  (numba would compile one more specialisation per literal).
* **No array expressions, slice assignments or reshapes** in kernels: they
  pull numba's error-message machinery (unicode formatting, shape checks)
  into the compile. Explicit loops only; the one allocation is the
  smoothing passes' accumulator row (``np.empty``, which pulls none of it).

``tests/test_compile_volume.py`` guards the number of compiled
specialisations.
"""
