"""The numba kernel layer: serial, ``nogil`` loops over one ``[start, stop)`` work unit.

One design for every kernel, chosen to keep the cold compile small:

* **3D only.** A 2D problem is lifted to a 1-voxel-thick 3D one
  (:mod:`parareg.kernels.lift`), so each operation has one kernel and
  compiles once for 2D and 3D alike. There is no dispatch table: drivers
  call the kernel of their operation.
* **One signature per kernel.** Drivers pass C-contiguous float32 images and
  fields, float64 matrices (3 x 3 / 4 x 4) and accumulators, and runtime
  flags (``nearest``, ``use_mask``, ``with_gradient``, ...) instead of
  separate kernels.
* **Shared helpers are ordinary ``@njit`` functions** in modules named for
  what they are (:mod:`~parareg.kernels.interp`,
  :mod:`~parareg.kernels.stencil`, :mod:`~parareg.kernels.samples`), each
  compiled once per process and used by every kernel. They are called with
  typed values, never with literal constants (numba would compile one more
  specialisation per literal), and are inlined by LLVM. ``inline="always"``
  (numba IR inlining, paid at every call site) is kept for a helper with
  two call sites of different array layouts.
* **No array expressions, slicing assignments, reshapes or allocation** in
  kernels: they pull numba's error-message machinery (unicode formatting,
  shape checks) into the compile. Explicit loops only.

``tests/test_compile_volume.py`` guards the number of compiled
specialisations.
"""
