"""Inference backends: one file per runtime, each holding its ``Backend`` class and its
pure ``device_problem(target, variant, report)`` rule.

Owns: the ``Backend`` contract (``base``), finding a backend's code through the backend
table and importing it only when needed (``registry``: ``create_backend``, the device
rules selection asks), and one module per runtime (``onnx``, ``openvino``, ``llama``,
with ``embedding`` and ``onnx_embed`` for embedding models). A native runtime is imported
in ``load``, never at import time.

A backend is its file here plus one row in runtime/backend_table.py. The row (runtime
package and distributions, pip extra, KServe platform, formats, device classes, memory
estimate, what the runtime offers) lives in the foundation, not in this room, because the
rooms below this one need those facts and must not import it: the catalog (formats,
estimates), the hardware probe (which runtimes to look for) and the device profiles
(which backends and devices exist). tests/architecture/test_backend_names.py keeps every
other module from naming a backend.

This face exports nothing: import the module you need, so that importing one backend
never imports another.
May import: the foundation, config, hardware, structured (grammars), catalog, profiles.
"""
