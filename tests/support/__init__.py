"""Support code for the tests, imported the normal way (``from tests.support.fake_data
import make_dataset``): the repository root is on ``sys.path`` (pytest's ``pythonpath``
setting) and every folder under ``tests/`` is a package.

- :mod:`.fake_data`: every fake dataset the tests build (noise identity folders, aligned
  face-like crops, LFW-layout manifests, an IJB-C release, the demo photos' masked copy).
- :mod:`.tiny_onnx`: tiny seeded ONNX embedding models with mfrkit's metadata.
- :mod:`.bench`: protocol folders and the bench config of a test run.
- :mod:`.models`: the model families' tiny configs and random batches.
- :mod:`.checks`: assertions on a command's one-line errors and on folder digests.
- :mod:`.insightface_ijb`: insightface's IJB evaluation written out (an independent oracle).
- :mod:`.recordio_reference`: an independent RecordIO reader/writer (a second opinion).
- :mod:`.chromium_cdp`: headless Chromium driven over the DevTools pipe (the report's test).
"""
