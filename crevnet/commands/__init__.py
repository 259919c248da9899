"""The command line, one module per command, each thin over the library.

A command module parses its arguments (with the shared definitions of :mod:`crevnet.commands.common`),
calls one library function, and prints what it returns; the work, with typed arguments and every check,
lives in the library (:mod:`crevnet.evaluation.evaluate`, :mod:`crevnet.inference.predict`, ...),
usable from Python.
:mod:`crevnet.cli` dispatches ``crevnet <command>`` to these modules and turns errors into one line.

- :mod:`~crevnet.commands.fit`: ``crevnet fit | validate | test`` (LightningCLI, :mod:`crevnet.train.cli`)
- :mod:`~crevnet.commands.evaluate`: ``crevnet evaluate``
  (:func:`crevnet.evaluation.evaluate.evaluate_checkpoint`)
- :mod:`~crevnet.commands.predict`: ``crevnet predict [--stream]``
  (:func:`crevnet.inference.predict.predict_file`, :func:`crevnet.deploy.stream.run_stream`)
- :mod:`~crevnet.commands.export`: ``crevnet export`` (:func:`crevnet.deploy.export.export_checkpoint`)
- :mod:`~crevnet.commands.data`: ``crevnet data mnist | surrogate | standard`` (:mod:`crevnet.data`)
- :mod:`~crevnet.commands.config`: ``crevnet config list | show | copy`` (:mod:`crevnet.configs`)

Command modules never import each other (only :mod:`crevnet.commands.common`), and no library module
imports this package; ``tests/test_architecture.py`` checks both from the source.
"""
